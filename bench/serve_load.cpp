// Load test of `mmkit serve` on loopback, against the engine's offline
// throughput measured in the same run (issue #8, acceptance 2).
//
//   build/serve_load --model clip.safetensors [--modes text,image] [--concurrency 1,8,32]
//                    [--duration 20] [--max-requests 5000] [--batches 1,2,4,8,16,32]
//                    [--max-batch 32] [--max-wait-ms 5] [--mmkit build/mmkit] [--out results.json] [--secure]
//
// 1. Offline: ClipRunner in this process, embed_token_ids / embed_pixels (the
//    forward only, inputs tokenized / preprocessed beforehand) at each batch
//    size; items/s = batch * reps / time. The best batch's rate is the reference.
// 2. The server: `mmkit serve --model M --port 0` started as a child on
//    127.0.0.1 (a free port); nothing else is contacted.
// 3. For each mode and concurrency C: C threads, each with one keep-alive
//    httplib::Client, send POST /v1/embeddings with one item ({"texts": [..]}
//    or {"images": [base64 PNG]}) back to back, after one warm-up request
//    each, until --duration seconds or --max-requests requests (bounded either
//    way). Reports requests/s, p50/p99 latency, errors (non-200 or transport
//    failures), and the server's RSS (VmRSS now, VmHWM peak) from /proc.
// 4. ratio = server requests/s at the largest C / best offline items/s.
// The server is stopped with SIGTERM at the end (and on any failure).
//
// --secure: a second server with an API key (--api-key-file) and HTTPS (--tls-cert/--tls-key,
// a certificate made with the openssl command in a temporary folder) runs beside the plain one;
// at each mode and concurrency the plain server is loaded, then the secure one (clients verify
// the certificate and send the key on keep-alive TLS connections), and the ratio secure / plain
// requests/s is printed (issue #20: >= 85% at concurrency 32).
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/image/canvas.h"
#include "mmkit/serve/request_limits.h"
#include "load_client_util.h"

using namespace mmkit;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

using mmkit::bench::proc_kb;
using mmkit::bench::self_dir;
using mmkit::bench::test_image;

namespace {

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, ',');)
    if (!p.empty()) v.push_back(std::stoi(p));
  return v;
}

std::vector<std::string> parse_strs(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, ',');)
    if (!p.empty()) v.push_back(p);
  return v;
}

std::string text_of(int i) {
  static const char* w[] = {"red", "green", "blue", "circle", "square", "stripe", "photo", "small", "large", "dark"};
  return std::string("a photo of a ") + w[i % 10] + " " + w[(i / 10) % 10] + " " + w[(i / 100) % 10];
}

struct Offline {
  int batch;
  double items_per_s;
};

std::vector<Offline> offline(ClipRunner& r, const std::string& mode, const std::vector<int>& batches, double min_s) {
  std::vector<Offline> out;
  const int maxb = *std::max_element(batches.begin(), batches.end());
  const int64_t R = r.image_resolution(), P = 3 * R * R;
  std::vector<float> pixels(size_t(maxb * P));
  std::vector<std::vector<int32_t>> ids;
  for (int i = 0; i < maxb; ++i) {
    if (mode == "image") preprocess_image(test_image(i, 256), r.preprocess(), pixels.data() + i * P);
    else ids.push_back(r.tokenize({text_of(i)})[0]);
  }
  for (int B : batches) {
    auto run = [&] {
      if (mode == "image") r.embed_pixels(pixels.data(), B, false, B);
      else r.embed_token_ids(std::vector<std::vector<int32_t>>(ids.begin(), ids.begin() + B), false, B);
    };
    run();  // warm-up (arena sized, caches)
    int reps = 0;
    auto t0 = Clock::now();
    do {
      run();
      ++reps;
    } while (secs(t0, Clock::now()) < min_s || reps < 2);
    double rate = double(B) * reps / secs(t0, Clock::now());
    out.push_back({B, rate});
    std::printf("  offline %-5s batch %2d: %8.2f items/s (%d reps)\n", mode.c_str(), B, rate, reps);
    std::fflush(stdout);
  }
  return out;
}

struct LoadResult {
  int concurrency = 0;
  int64_t ok = 0, errors = 0;
  double seconds = 0, rps = 0, p50_ms = 0, p99_ms = 0, mean_batch = 0;
  long rss_kb = 0, hwm_kb = 0;
};

double pct(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::min<double>(double(v.size()) - 1, std::ceil(q * double(v.size())) - 1));
  return v[i];
}

// Mean batch size of a tower, from the server's /metrics.
double batch_items(httplib::Client& c, const std::string& tower, double* batches) {
  auto r = c.Get("/metrics");
  if (!r) return 0;
  auto grab = [&](const std::string& name) {
    std::string key = name + "{tower=\"" + tower + "\"} ";
    size_t p = r->body.find(key);
    return p == std::string::npos ? 0.0 : std::atof(r->body.c_str() + p + key.size());
  };
  *batches = grab("mmkit_batches_total");
  return grab("mmkit_batch_items_total");
}

// Where the load goes: plain HTTP, or HTTPS with a CA file to verify against and a bearer key.
struct Target {
  int port = 0;
  std::string ca, key;  // empty: plain HTTP, no key
  httplib::Client client() const {
    httplib::Client c((ca.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port));
    if (!ca.empty()) {
      c.set_ca_cert_path(ca.c_str());
      c.enable_server_certificate_verification(true);
    }
    if (!key.empty()) c.set_bearer_token_auth(key);
    return c;
  }
};

LoadResult load(const Target& target, pid_t server, const std::string& mode, int C, double duration, int64_t max_requests,
                const std::vector<std::string>& bodies) {
  httplib::Client mc = target.client();
  double b0 = 0, b1 = 0;
  double i0 = batch_items(mc, mode, &b0);
  std::atomic<int64_t> issued{0}, errors{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(C));
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  Clock::time_point t_start, t_end;
  for (int t = 0; t < C; ++t)
    ts.emplace_back([&, t] {
      httplib::Client c = target.client();
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      c.set_read_timeout(300, 0);
      c.set_connection_timeout(10, 0);
      auto warm = c.Post("/v1/embeddings", bodies[size_t(t) % bodies.size()], "application/json");
      if (!warm || warm->status != 200) ++errors;
      ++ready;
      while (!go) std::this_thread::yield();
      for (int64_t k = t;; k += C) {
        if (issued.fetch_add(1) >= max_requests) break;
        auto t0 = Clock::now();
        if (secs(t_start, t0) > duration) break;
        auto r = c.Post("/v1/embeddings", bodies[size_t(k) % bodies.size()], "application/json");
        auto t1 = Clock::now();
        if (!r || r->status != 200 || r->body.find("_embeddings") == std::string::npos) {
          ++errors;
          continue;
        }
        lat[size_t(t)].push_back(secs(t0, t1) * 1e3);
      }
    });
  while (ready < C) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double bw = 0;
  i0 = batch_items(mc, mode, &bw);
  b0 = bw;
  t_start = Clock::now();
  go = true;
  for (auto& t : ts) t.join();
  t_end = Clock::now();
  LoadResult res;
  res.concurrency = C;
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  res.ok = int64_t(all.size());
  res.errors = errors;
  res.seconds = secs(t_start, t_end);
  res.rps = double(res.ok) / res.seconds;
  res.p50_ms = pct(all, 0.5);
  res.p99_ms = pct(all, 0.99);
  double i1 = batch_items(mc, mode, &b1);
  res.mean_batch = b1 > b0 ? (i1 - i0) / (b1 - b0) : 0;
  res.rss_kb = proc_kb(server, "VmRSS:");
  res.hwm_kb = proc_kb(server, "VmHWM:");
  return res;
}

pid_t g_server = 0, g_secure = 0;
void stop_one(pid_t& pid) {
  if (pid > 0) {
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = 0;
  }
}
void stop_server() {
  stop_one(g_server);
  stop_one(g_secure);
}

// `mmkit serve --model M --port 0 ... extra` as a child; its port (0 if it did not start).
int start_server(pid_t& pid, const std::string& mmkit_bin, const std::string& model, const std::string& port_file,
                 int max_batch, double max_wait_ms, int http_threads, const std::vector<std::string>& extra) {
  pid = ::fork();
  if (pid == 0) {
    std::vector<std::string> a = {mmkit_bin, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
                                  "--port-file", port_file, "--max-batch", std::to_string(max_batch),
                                  "--max-wait-ms", std::to_string(max_wait_ms), "--http-threads", std::to_string(http_threads)};
    a.insert(a.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    ::execv(mmkit_bin.c_str(), argv.data());
    std::perror("exec mmkit serve");
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 600 && !port; ++i) {
    std::ifstream f(port_file);
    if (!(f >> port)) port = 0;
    if (!port) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      pid = 0;
      std::fprintf(stderr, "serve_load: the server exited during start-up\n");
      return 0;
    }
  }
  if (!port) std::fprintf(stderr, "serve_load: no port from the server after 30 s\n");
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  apply_default_wait_policy(argc, argv);
  std::string model, mmkit_bin = self_dir() + "/mmkit", out, modes_s = "text,image", conc_s = "1,8,32",
                     batches_s = "1,2,4,8,16,32";
  double duration = 20, max_wait_ms = 5, offline_s = 3;
  int64_t max_requests = 5000;
  int max_batch = 32, http_threads = 64;
  bool secure = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model = next();
    else if (a == "--mmkit") mmkit_bin = next();
    else if (a == "--modes") modes_s = next();
    else if (a == "--concurrency") conc_s = next();
    else if (a == "--batches") batches_s = next();
    else if (a == "--duration") duration = std::stod(next());
    else if (a == "--offline-seconds") offline_s = std::stod(next());
    else if (a == "--max-requests") max_requests = std::stoll(next());
    else if (a == "--max-batch") max_batch = std::stoi(next());
    else if (a == "--max-wait-ms") max_wait_ms = std::stod(next());
    else if (a == "--http-threads") http_threads = std::stoi(next());
    else if (a == "--out") out = next();
    else if (a == "--secure") secure = true;
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench/serve_load.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: serve_load --model clip.safetensors [options]\n");
    return 2;
  }
  std::vector<std::string> modes = parse_strs(modes_s);
  std::vector<int> conc = parse_ints(conc_s), batches = parse_ints(batches_s);
  set_num_threads(0);
  std::printf("serve_load: model %s, %d threads, load average %s", model.c_str(), num_threads(),
              [] {
                std::ifstream f("/proc/loadavg");
                std::string s;
                std::getline(f, s);
                return s + "\n";
              }()
                  .c_str());

  // 1. Offline reference, then the runner is freed before the server starts.
  std::map<std::string, Offline> best;
  json report;
  {
    ClipRunner r = ClipRunner::open(model);
    for (auto& m : modes) {
      auto v = offline(r, m, batches, offline_s);
      Offline b = *std::max_element(v.begin(), v.end(), [](auto& x, auto& y) { return x.items_per_s < y.items_per_s; });
      best[m] = b;
      for (auto& o : v) report["offline"][m].push_back({{"batch", o.batch}, {"items_per_s", o.items_per_s}});
    }
  }

  // 2. The server on a free loopback port.
  char tmpl[] = "/tmp/mmkit_serve_load_XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string port_file = dir + "/port";
  std::atexit(stop_server);
  const int port = start_server(g_server, mmkit_bin, model, port_file, max_batch, max_wait_ms, http_threads, {});
  if (!port) return 1;
  std::printf("server: pid %d on 127.0.0.1:%d (max batch %d, max wait %.1f ms), RSS %ld kB idle\n", int(g_server), port,
              max_batch, max_wait_ms, proc_kb(g_server, "VmRSS:"));
  const Target plain{port, "", ""};
  Target sec;
  if (secure) {
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
                            "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
                            "/cert.pem 2> /dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "serve_load: --secure needs the openssl command (Debian openssl)\n");
      return 1;
    }
    sec.key = "sk-load-" + std::to_string(::getpid());
    std::ofstream(dir + "/keys.txt") << sec.key << "\n";
    sec.ca = dir + "/cert.pem";
    sec.port = start_server(g_secure, mmkit_bin, model, dir + "/port2", max_batch, max_wait_ms, http_threads,
                            {"--api-key-file", dir + "/keys.txt", "--tls-cert", sec.ca, "--tls-key", dir + "/key.pem"});
    if (!sec.port) return 1;
    std::printf("secure server: pid %d on https://127.0.0.1:%d/ with an API key\n", int(g_secure), sec.port);
  }

  // 3. Request bodies.
  std::map<std::string, std::vector<std::string>> bodies;
  for (int i = 0; i < 64; ++i) bodies["text"].push_back(json{{"texts", {text_of(i)}}}.dump());
  for (int i = 0; i < 16; ++i) {
    std::vector<uint8_t> png = encode_png(test_image(i, 256));
    bodies["image"].push_back(json{{"images", {serve::encode_base64(png.data(), png.size())}}}.dump());
  }
  bool any_error = false;
  std::printf("\n%-6s %5s %9s %10s %10s %8s %9s %7s %10s %10s\n", "mode", "conc", "requests", "req/s", "p50 ms",
              "p99 ms", "errors", "batch", "RSS MB", "peak MB");
  for (auto& m : modes) {
    LoadResult last;
    for (int C : conc) {
      LoadResult r = load(plain, g_server, m, C, duration, max_requests, bodies[m]);
      std::printf("%-6s %5d %9lld %10.2f %10.1f %8.1f %9lld %7.1f %10.1f %10.1f\n", m.c_str(), C, (long long)r.ok, r.rps,
                  r.p50_ms, r.p99_ms, (long long)r.errors, r.mean_batch, r.rss_kb / 1024.0, r.hwm_kb / 1024.0);
      std::fflush(stdout);
      if (secure) {
        LoadResult t = load(sec, g_secure, m, C, duration, max_requests, bodies[m]);
        std::printf("%-6s %5d %9lld %10.2f %10.1f %8.1f %9lld %7.1f %10.1f %10.1f   key+TLS: %.1f%% of plain\n",
                    (m + "+tls").c_str(), C, (long long)t.ok, t.rps, t.p50_ms, t.p99_ms, (long long)t.errors, t.mean_batch,
                    t.rss_kb / 1024.0, t.hwm_kb / 1024.0, 100 * t.rps / r.rps);
        std::fflush(stdout);
        report["secure"][m].push_back({{"concurrency", C}, {"requests", t.ok}, {"errors", t.errors}, {"req_per_s", t.rps},
                                       {"p50_ms", t.p50_ms}, {"p99_ms", t.p99_ms}, {"ratio_to_plain", t.rps / r.rps}});
        any_error |= t.errors > 0;
      }
      report["load"][m].push_back({{"concurrency", C}, {"requests", r.ok}, {"errors", r.errors}, {"seconds", r.seconds},
                                   {"req_per_s", r.rps}, {"p50_ms", r.p50_ms}, {"p99_ms", r.p99_ms},
                                   {"mean_batch", r.mean_batch}, {"rss_kb", r.rss_kb}, {"hwm_kb", r.hwm_kb}});
      any_error |= r.errors > 0;
      last = r;
    }
    double ratio = last.rps / best[m].items_per_s;
    report["ratio"][m] = ratio;
    std::printf("%s: server at concurrency %d = %.2f req/s; offline best = %.2f items/s (batch %d); ratio %.1f%%\n",
                m.c_str(), last.concurrency, last.rps, best[m].items_per_s, best[m].batch, 100 * ratio);
  }
  stop_server();
  {
    std::ifstream f("/proc/loadavg");
    std::string s;
    std::getline(f, s);
    std::printf("load average after: %s\n", s.c_str());
    report["loadavg_after"] = s;
  }
  if (!out.empty()) std::ofstream(out) << report.dump(1) << "\n";
  for (const char* f : {"/port", "/port2", "/keys.txt", "/cert.pem", "/key.pem"}) std::remove((dir + f).c_str());
  ::rmdir(dir.c_str());
  return any_error ? 1 : 0;
}
