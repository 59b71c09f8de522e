// Access control and HTTPS of the server: API keys (ApiKeys: file rules,
// constant-time check; 401 with WWW-Authenticate on every route but /healthz,
// keys in neither answers nor metrics nor the log of `mmkit serve`), and TLS in
// the connection loop (a certificate generated here with the openssl command;
// HTTPS answers equal plain HTTP's; plain HTTP to the HTTPS port gets a clear
// 400 and leaves the server serving).
#include <gtest/gtest.h>
#include <httplib.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "../bench/hostile_requests.h"
#include "api_server.h"
#include "mmkit/serve/api_keys.h"
#include "serve_fixtures.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::serve;
using json = nlohmann::json;

namespace {

const char* kKeys = "# keys of the test\n\nsk-test-one\n   sk-test-two-0123456789   \n";

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// A self-signed certificate for 127.0.0.1 (openssl req); "" when the openssl command is missing.
std::string make_cert(const std::string& dir) {
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
                          "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
                          "/cert.pem > " + dir + "/openssl.log 2>&1";
  if (std::system(cmd.c_str()) != 0) return "";
  return dir + "/cert.pem";
}

struct Models {
  std::string dir, model;
  std::unique_ptr<ClipService> clip;
  ServerModels m;
  Models() {
    dir = test::make_temp_dir("serve_access");
    model = test::write_tiny_clip(dir);
    clip = std::make_unique<ClipService>(ClipRunner::open(model), BatcherOptions{8, 2, 256}, BatcherOptions{8, 2, 256});
    m.clip = clip.get();
    m.clip_name = "tiny";
  }
};

TEST(ApiKeys, FileRulesAndChecks) {
  ApiKeys k = ApiKeys::from_lines(kKeys, "keys.txt");
  EXPECT_EQ(k.size(), 2u);
  EXPECT_TRUE(k.allows("Bearer sk-test-one"));
  EXPECT_TRUE(k.allows("bearer sk-test-two-0123456789"));  // the scheme is case-insensitive
  EXPECT_TRUE(k.allows("BEARER   sk-test-one  "));
  for (const char* bad : {"", "Bearer", "Bearer ", "sk-test-one", "Basic sk-test-one", "Bearer sk-test-on",
                          "Bearer sk-test-one1", "Bearer sk-test-two", "Bearer # keys of the test"})
    EXPECT_FALSE(k.allows(bad)) << "'" << bad << "'";
  const std::string none = test::error_of([] { ApiKeys::from_lines("# only a comment\n\n", "keys.txt"); });
  EXPECT_NE(none.find("keys.txt: no API key"), std::string::npos) << none;
  const std::string spaced = test::error_of([] { ApiKeys::from_lines("good\nsecret part two\n", "keys.txt"); });
  EXPECT_NE(spaced.find("keys.txt:2: a key must be one token"), std::string::npos) << spaced;
  EXPECT_EQ(spaced.find("secret"), std::string::npos) << "the error quotes the key: " << spaced;
  const std::string missing = test::error_of([] { ApiKeys::load("/nonexistent/keys.txt"); });
  EXPECT_NE(missing.find("cannot open the API key file"), std::string::npos) << missing;
}

TEST(ServeAccess, EveryRouteButHealthzWantsAKey) {
  Models env;
  ServerOptions so;
  so.api_keys = std::make_shared<ApiKeys>(ApiKeys::from_lines(kKeys, "keys.txt"));
  test::InProcessServer server(env.m, so);
  auto c = server.client();
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/"}, {"GET", "/app.js"}, {"GET", "/style.css"}, {"GET", "/metrics"}, {"GET", "/v1/metrics"},
      {"GET", "/v1/models"}, {"GET", "/v1/models/tiny"}, {"GET", "/v1/thumb/0"}, {"GET", "/no-such-route"},
      {"POST", "/v1/embeddings"}, {"POST", "/v1/zero-shot"}, {"POST", "/v1/search"}, {"POST", "/v1/classify"},
      {"POST", "/v1/vqa"}, {"POST", "/v1/caption"}};
  const std::string body = json{{"input", "a red circle"}}.dump();
  for (const auto& [method, path] : routes)
    for (const std::string auth : {"", "Bearer wrong-key", "Bearer sk-test-one", "Basic c2stdGVzdC1vbmU="}) {
      httplib::Headers h;
      if (!auth.empty()) h.emplace("Authorization", auth);
      auto r = method == "GET" ? c.Get(path.c_str(), h) : c.Post(path.c_str(), h, body, "application/json");
      ASSERT_TRUE(r) << method << " " << path;
      const std::string what = method + " " + path + " with '" + auth + "'";
      if (auth == "Bearer sk-test-one") {
        EXPECT_NE(r->status, 401) << what << ": " << r->body;
        continue;
      }
      EXPECT_EQ(r->status, 401) << what << ": " << r->body;
      EXPECT_EQ(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u) << what;
      json j = json::parse(r->body, nullptr, false);
      ASSERT_TRUE(j.is_object()) << what << ": " << r->body;
      EXPECT_EQ(j["error"]["code"], "invalid_api_key") << what;
      EXPECT_EQ(j["error"]["type"], "authentication_error") << what;
      EXPECT_NE(j["error"]["message"].get<std::string>().find(auth.empty() ? "missing API key" : "not valid"),
                std::string::npos) << what << ": " << r->body;
      EXPECT_EQ(r->body.find("wrong-key"), std::string::npos) << what << ": the answer quotes the key";
    }
  auto h = c.Get("/healthz");  // balancers' health checks carry no key
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/metrics", {{"Authorization", "Bearer sk-test-two-0123456789"}});
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("route=\"unauthorized\",status=\"401\""), std::string::npos) << m->body;
  for (const char* secret : {"sk-test", "wrong-key", "c2stdGVzdC1vbmU"})
    EXPECT_EQ(m->body.find(secret), std::string::npos) << "the metrics hold " << secret;
}

TEST(ServeAccess, HttpsAnswersAsHttpAndPlainHttpToItFailsCleanly) {
  Models env;
  const std::string cert = make_cert(env.dir);
  if (cert.empty()) GTEST_SKIP() << "the openssl command is missing (Debian openssl): no certificate to test with";
  std::string plain_embedding;
  {
    // The second call's: a tower's first call reads its weights in place, later ones (all those
    // below) use them packed (infer/packed_linear.h), which can change the last bits.
    test::InProcessServer plain(env.m, ServerOptions{});
    plain.post("/v1/embeddings", {{"input", "a red circle"}}, 200);
    plain_embedding = plain.post("/v1/embeddings", {{"input", "a red circle"}}, 200)["data"][0]["embedding"].dump();
  }
  ServerOptions so;
  so.tls_cert = cert;
  so.tls_key = env.dir + "/key.pem";
  so.api_keys = std::make_shared<ApiKeys>(ApiKeys::from_lines(kKeys, "keys.txt"));
  test::InProcessServer server(env.m, so);
  auto tls_client = [&] {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server.port());
    c->set_ca_cert_path(cert.c_str());
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(60, 0);
    c->set_bearer_token_auth("sk-test-one");
    return c;
  };
  auto embed = [&](httplib::SSLClient& c) {
    auto r = c.Post("/v1/embeddings", json{{"input", "a red circle"}}.dump(), "application/json");
    EXPECT_TRUE(r) << "no HTTPS answer: " << httplib::to_string(r.error());
    if (!r) return std::string();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body)["data"][0]["embedding"].dump();
  };
  auto c = tls_client();
  EXPECT_EQ(embed(*c), plain_embedding);
  EXPECT_EQ(embed(*c), plain_embedding);  // a kept-alive TLS connection
  // Keys apply over HTTPS as well.
  httplib::SSLClient nokey("127.0.0.1", server.port());
  nokey.set_ca_cert_path(cert.c_str());
  auto r401 = nokey.Get("/v1/models");
  ASSERT_TRUE(r401);
  EXPECT_EQ(r401->status, 401);

  // Plain HTTP to the HTTPS port: a plain-text 400 saying so, then the connection closes.
  const hostile::HttpReply answer = hostile::raw_http(server.port(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, 30);
  EXPECT_EQ(answer.status, 400) << answer.error;
  EXPECT_EQ(answer.json()["error"]["code"], "tls_required") << answer.body;
  EXPECT_NE(answer.body.find("HTTPS only"), std::string::npos) << answer.body;
  // Bytes that start a TLS record but are no handshake: the connection closes, nothing is answered.
  const hostile::HttpReply junk = hostile::raw_http(server.port(), std::string("\x16\x03\x01\x00\x05hello", 10), 0, 30);
  EXPECT_EQ(junk.status, 0);
  EXPECT_TRUE(junk.closed) << junk.error;
  // httplib's plain client gets an answer it can read (the 400), not a hang.
  auto plain = test::loopback_client(server.port());
  auto pr = plain.Get("/healthz");
  if (pr) {
    EXPECT_EQ(pr->status, 400);
  }
  // The server still serves HTTPS.
  auto c2 = tls_client();
  EXPECT_EQ(embed(*c2), plain_embedding);
}

// A client that starts a TLS handshake and stalls costs a socket until the idle deadline, then
// is closed; clients handshaking at the same time are served meanwhile.
TEST(ServeAccess, AStalledHandshakeIsClosedAtTheIdleDeadline) {
  Models env;
  const std::string cert = make_cert(env.dir);
  if (cert.empty()) GTEST_SKIP() << "the openssl command is missing (Debian openssl)";
  ServerOptions so;
  so.tls_cert = cert;
  so.tls_key = env.dir + "/key.pem";
  so.idle_timeout_s = 1;
  test::InProcessServer server(env.m, so);
  std::thread stalled([&] {
    // The first 3 bytes of a ClientHello record, then nothing: the server waits for the rest.
    const hostile::HttpReply r = hostile::raw_http(server.port(), std::string("\x16\x03\x01", 3), 0, 30);
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(r.closed) << "not closed within 30 s: " << r.error;
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&] {
      httplib::SSLClient c("127.0.0.1", server.port());
      c.set_ca_cert_path(cert.c_str());
      c.enable_server_certificate_verification(true);
      c.set_read_timeout(60, 0);
      auto r = c.Get("/healthz");
      ASSERT_TRUE(r) << httplib::to_string(r.error());
      EXPECT_EQ(r->status, 200);
    });
  for (auto& t : clients) t.join();
  stalled.join();
}

// `mmkit serve --api-key-file --tls-cert --tls-key`: the log names neither key, and a wrong
// key file is refused with a message naming the file but not quoting its lines.
TEST(ServeAccess, TheCliServerLogsNoKey) {
  struct {
    std::string dir, model;
  } env;
  env.dir = test::make_temp_dir("serve_access_cli");
  env.model = test::write_tiny_clip(env.dir);
  const std::string cert = make_cert(env.dir);
  if (cert.empty()) GTEST_SKIP() << "the openssl command is missing (Debian openssl)";
  test::write_bytes(env.dir + "/keys.txt", kKeys);
  const std::string port_file = env.dir + "/port", log = env.dir + "/serve.log";
  // Everything the child needs is built before fork (only async-signal-safe calls after it).
  std::vector<std::string> args = {std::string(MMKIT_BINARY_DIR) + "/mmkit", "serve", "--model", "tiny=" + env.model,
                                   "--port", "0", "--port-file", port_file, "--api-key-file", env.dir + "/keys.txt",
                                   "--tls-cert", cert, "--tls-key", env.dir + "/key.pem"};
  std::vector<char*> argv;
  for (auto& x : args) argv.push_back(x.data());
  argv.push_back(nullptr);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(log_fd, 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(log_fd);
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream f(port_file);
    f >> port;
  }
  ASSERT_GT(port, 0) << read_file(log);
  httplib::SSLClient c("127.0.0.1", port);
  c.set_ca_cert_path(cert.c_str());
  c.enable_server_certificate_verification(true);
  c.set_read_timeout(60, 0);
  for (const char* key : {"sk-test-two-0123456789", "sk-test-wrong"}) {
    c.set_bearer_token_auth(key);
    auto r = c.Post("/v1/embeddings", json{{"model", "tiny"}, {"input", {"a cat", ""}}}.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, std::string(key) == "sk-test-wrong" ? 401 : 400) << r->body;
  }
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(log);
  const std::string text = read_file(log);
  EXPECT_NE(text.find("https://"), std::string::npos) << text;
  EXPECT_NE(text.find("2 API keys"), std::string::npos) << text;
  EXPECT_EQ(text.find("sk-test"), std::string::npos) << "the log names a key:\n" << text;

  test::write_bytes(env.dir + "/bad_keys.txt", "sk-good\nsk secret with spaces\n");
  test::RunResult bad = test::run_mmkit("serve --model " + env.model + " --port 0 --api-key-file " + env.dir + "/bad_keys.txt", env.dir);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("bad_keys.txt:2"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("secret"), std::string::npos) << bad.err;
  test::RunResult nokey = test::run_mmkit("serve --model " + env.model + " --port 0 --tls-cert " + cert, env.dir);
  EXPECT_NE(nokey.code, 0);
  EXPECT_NE(nokey.err.find("both --tls-cert and --tls-key"), std::string::npos) << nokey.err;
}

}  // namespace
