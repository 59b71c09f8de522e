// The live index over HTTP (apps/serve/index_routes.cpp) with a tiny seeded CLIP:
// 1,000 generated images added, 100 removed and 50 updated over HTTP, after which
// no search (text, image, vector, filtered) returns a removed item and the index
// reloads from disk as it was; the 4xx answers naming unknown ids, duplicate ids,
// bad ids, malformed metadata and malformed filters; near-duplicate groups of a
// generated set with exact copies, re-encoded JPEGs and resized versions reach
// precision and recall >= 0.95 at the default threshold; and a real `mmkit serve`
// SIGKILLed during a stream of adds restarts with every acknowledged add.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../bench/near_duplicate_set.h"
#include "mmkit/core/rng.h"
#include "mmkit/index/live_index.h"
#include "mmkit/serve/request_limits.h"
#include "serve_fixtures.h"

using namespace mmkit;
using json = nlohmann::json;

namespace {

std::string b64(const std::vector<uint8_t>& bytes) { return serve::encode_base64(bytes.data(), bytes.size()); }
std::string b64_png(const Image& im) { return b64(encode_png(im)); }

// A tiny CLIP behind a server with a fresh live index in its own folder.
struct LiveServer {
  std::string dir, model;
  std::unique_ptr<serve::ClipService> clip;
  std::unique_ptr<index::LiveIndex> live;
  std::unique_ptr<test::InProcessServer> server;  // last: stopped first
  explicit LiveServer(const std::string& tag) {
    dir = test::make_temp_dir(tag);
    model = test::write_tiny_clip(dir);
    start();
  }
  void start() {
    ClipRunner r = ClipRunner::open(model);
    live = index::LiveIndex::exists(dir + "/live") ? index::LiveIndex::open(dir + "/live", {})
                                                   : index::LiveIndex::create(dir + "/live", r, model, {});
    clip = std::make_unique<serve::ClipService>(std::move(r), serve::BatcherOptions{16, 2, 1024},
                                                serve::BatcherOptions{16, 2, 1024});
    serve::ServerModels m;
    m.clip = clip.get();
    m.clip_name = "tiny";
    m.live = live.get();
    server = std::make_unique<test::InProcessServer>(m, serve::ServerOptions{});
  }
  void stop() {
    server.reset();
    clip.reset();
    live.reset();
  }
  httplib::Client client() const { return server->client(); }
};

int status_of(const httplib::Result& r) { return r ? r->status : -1; }

std::string id_of(int i) { return "img-" + std::to_string(i); }

}  // namespace

TEST(ServeLiveIndex, AThousandAddsAHundredRemovesFiftyUpdatesAndNoSearchReturnsARemovedItem) {
  LiveServer s("live_http_1000");
  const int N = 1000;
  // Added from 4 client threads at once, as a server sees them.
  std::atomic<int> next{0}, failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      auto c = s.client();
      for (int i; (i = next++) < N;) {
        json body = {{"id", id_of(i)},
                     {"image", b64_png(test::shape_image(i, 32))},
                     {"metadata", {{"n", i}, {"group", i % 10}, {"name", "image " + std::to_string(i)}}}};
        auto r = c.Post("/v1/index/items", body.dump(), "application/json");
        if (status_of(r) != 201) {
          if (failures++ < 3) ADD_FAILURE() << id_of(i) << ": " << (r ? r->body : "no response");
        }
      }
    });
  for (auto& t : ts) t.join();
  ASSERT_EQ(failures, 0);
  auto c = std::make_unique<httplib::Client>(s.client());
  EXPECT_EQ(json::parse(c->Get("/v1/index")->body)["size"], N);

  std::set<std::string> removed, updated;
  for (int i = 3; i < N; i += 10) {  // 100 removals: group 3
    auto r = c->Delete(("/v1/index/items/" + id_of(i)).c_str());
    ASSERT_EQ(status_of(r), 200) << (r ? r->body : "");
    removed.insert(id_of(i));
  }
  for (int i = 1; i < N; i += 20) {  // 50 updates: new metadata, and for every other one a new image
    json body = {{"metadata", {{"n", i}, {"group", 99}, {"updated", true}}}};
    if (i % 40 == 1) body["image"] = b64_png(test::shape_image(5000 + i, 32));
    auto r = c->Put(("/v1/index/items/" + id_of(i)).c_str(), body.dump(), "application/json");
    ASSERT_EQ(status_of(r), 200) << (r ? r->body : "");
    EXPECT_EQ(json::parse(r->body)["metadata"]["group"], 99);
    updated.insert(id_of(i));
  }
  ASSERT_EQ(removed.size(), 100u);
  ASSERT_EQ(updated.size(), 50u);
  EXPECT_EQ(json::parse(c->Get("/v1/index")->body)["size"], N - 100);

  auto search = [&](json body) {
    body["top_k"] = 100;
    auto r = c->Post("/v1/index/search", body.dump(), "application/json");
    EXPECT_EQ(status_of(r), 200) << (r ? r->body : "");
    return r ? json::parse(r->body)["results"] : json::array();
  };
  auto check_none_removed = [&](const json& results, const std::string& what) {
    for (auto& h : results) EXPECT_FALSE(removed.count(h["id"].get<std::string>())) << what << " returned " << h["id"];
  };
  // Queries aimed at removed items: their own images, their metadata, vectors.
  for (int i = 3; i < 200; i += 40) {
    json res = search({{"image", b64_png(test::shape_image(i, 32))}});
    EXPECT_EQ(res.size(), 100u);
    check_none_removed(res, "image of " + id_of(i));
  }
  check_none_removed(search({{"text", "a photo of a red circle"}}), "text");
  Rng rng(5);
  for (int q = 0; q < 10; ++q) {
    json v = json::array();
    for (int d = 0; d < 32; ++d) v.push_back(rng.uniform() - 0.5);
    check_none_removed(search({{"vector", v}}), "vector");
    check_none_removed(search({{"vector", v}, {"filter", {{"group", {{"$in", {1, 3, 5}}}}}}}), "filtered vector");
  }
  EXPECT_EQ(search({{"text", "a cat"}, {"filter", {{"group", 3}}}}).size(), 0u);  // all of group 3 is gone
  json up = search({{"text", "a cat"}, {"filter", {{"group", 99}}}});
  EXPECT_EQ(up.size(), 50u);
  for (auto& h : up) EXPECT_TRUE(updated.count(h["id"].get<std::string>())) << h.dump();
  json same = search({{"text", "a cat"}, {"filter", {{"updated", true}, {"n", {{"$lt", 500}}}}}});
  EXPECT_EQ(same.size(), 25u);
  // An item whose image was replaced is found by its new image, not by its old one.
  json res = search({{"image", b64_png(test::shape_image(5000 + 41, 32))}});
  EXPECT_EQ(res[0]["id"], id_of(41));
  EXPECT_GT(res[0]["score"].get<double>(), 0.9999);
  for (int i : {3, 13, 993}) {
    auto r = c->Get(("/v1/index/items/" + id_of(i)).c_str());
    test::expect_api_error(r, 404, "unknown_id", id_of(i));
  }
  auto thumb = c->Get(("/v1/index/items/" + id_of(2) + "/thumb").c_str());
  ASSERT_EQ(status_of(thumb), 200);
  EXPECT_EQ(thumb->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(decode_image_memory(reinterpret_cast<const uint8_t*>(thumb->body.data()), thumb->body.size(), "thumb").width, 32);

  // The log holds all of it: a restart (no compaction in between) loads the same index.
  s.stop();
  {
    auto li = index::LiveIndex::open(s.dir + "/live", {});
    EXPECT_TRUE(li->warnings().empty());
    EXPECT_EQ(li->stats().count, N - 100);
    EXPECT_EQ(li->stats().wal_records, N + 100 + 50);
    for (auto& id : removed) EXPECT_FALSE(li->get(id)) << id;
    for (auto& id : updated) EXPECT_EQ(li->get(id)->metadata["group"], 99) << id;
    EXPECT_EQ(li->get(id_of(2))->metadata["name"], "image 2");
  }
  s.start();
  c = std::make_unique<httplib::Client>(s.client());
  auto r = c->Post("/v1/index/compact", "{}", "application/json");
  ASSERT_EQ(status_of(r), 200);
  EXPECT_EQ(json::parse(r->body)["log_records_compacted"], N + 150);
  check_none_removed(search({{"text", "a photo of a red circle"}}), "text after compaction");
  EXPECT_EQ(json::parse(c->Get("/v1/index")->body)["size"], N - 100);
}

TEST(ServeLiveIndex, BadRequestsGet4xxNamingTheProblem) {
  LiveServer s("live_http_errors");
  auto c = s.client();
  const std::string img = b64_png(test::shape_image(1, 32));
  auto post = [&](const std::string& path, const std::string& body) { return c.Post(path.c_str(), body, "application/json"); };
  ASSERT_EQ(status_of(post("/v1/index/items", json{{"id", "a"}, {"image", img}, {"metadata", {{"year", 2020}}}}.dump())), 201);

  // Ids.
  test::expect_api_error(post("/v1/index/items", json{{"id", "a"}, {"image", img}}.dump()), 409, "duplicate_id", "'a' is already");
  test::expect_api_error(post("/v1/index/items", json{{"image", img}}.dump()), 400, "missing_field", "'id'");
  test::expect_api_error(post("/v1/index/items", json{{"id", "a b"}, {"image", img}}.dump()), 400, "bad_id", "' ' is not allowed");
  test::expect_api_error(post("/v1/index/items", json{{"id", std::string(200, 'x')}, {"image", img}}.dump()), 400, "bad_id",
                         "the limit is 128");
  test::expect_api_error(c.Delete("/v1/index/items/nope"), 404, "unknown_id", "'nope'");
  test::expect_api_error(c.Put("/v1/index/items/nope", json{{"metadata", json::object()}}.dump(), "application/json"), 404,
                         "unknown_id", "'nope'");
  test::expect_api_error(c.Get("/v1/index/items/nope"), 404, "unknown_id", "'nope'");
  test::expect_api_error(c.Get("/v1/index/items/nope/thumb"), 404, "unknown_id", "'nope'");
  test::expect_api_error(c.Delete("/v1/index/items/a%20b"), 400, "bad_id", "not allowed");
  test::expect_api_error(c.Put("/v1/index/items/a", "{}", "application/json"), 400, "bad_request", "nothing to update");

  // Metadata.
  test::expect_api_error(post("/v1/index/items", json{{"id", "b"}, {"image", img}, {"metadata", {1, 2}}}.dump()), 400,
                         "bad_metadata", "expected a JSON object, got an array");
  test::expect_api_error(post("/v1/index/items", json{{"id", "b"}, {"image", img}, {"metadata", {{"$set", 1}}}}.dump()), 400,
                         "bad_metadata", "metadata: key '$set' starts with '$'");
  test::expect_api_error(post("/v1/index/items", json{{"id", "b"}, {"image", img}, {"metadata", {{"a", {{"b.c", 1}}}}}}.dump()),
                         400, "bad_metadata", "metadata.a: key 'b.c' contains '.'");
  test::expect_api_error(c.Put("/v1/index/items/a", json{{"metadata", "x"}}.dump(), "application/json"), 400, "bad_metadata",
                         "got a string");
  {  // multipart: metadata is a text field holding JSON
    httplib::MultipartFormDataItems form = {{"id", "b", "", ""},
                                            {"metadata", "{\"year\": 20", "", ""},
                                            {"image", std::string(), "b.png", "image/png"}};
    std::vector<uint8_t> png = encode_png(test::shape_image(2, 32));
    form[2].content.assign(png.begin(), png.end());
    test::expect_api_error(c.Post("/v1/index/items", form), 400, "bad_metadata", "'metadata' is not valid JSON");
    form[1].content = R"({"year": 2021, "tags": ["x"]})";
    auto r = c.Post("/v1/index/items", form);
    ASSERT_EQ(status_of(r), 201) << r->body;
    EXPECT_EQ(json::parse(r->body)["metadata"]["tags"][0], "x");
  }
  // Nothing refused was added.
  EXPECT_EQ(json::parse(c.Get("/v1/index")->body)["size"], 2);

  // Filters.
  auto search = [&](const json& filter) {
    return post("/v1/index/search", json{{"text", "a cat"}, {"filter", filter}}.dump());
  };
  test::expect_api_error(search({{"year", {{"$gt", {1}}}}}), 400, "bad_filter", "filter.year.$gt: expected a number or a string");
  test::expect_api_error(search({{"year", {{"$regex", "x"}}}}), 400, "bad_filter", "unknown operator '$regex'");
  test::expect_api_error(search({1, 2}), 400, "bad_filter", "filter: expected an object, got an array");
  test::expect_api_error(search({{"$or", {{{"a", 1}}, "x"}}}), 400, "bad_filter", "filter.$or[1]: expected an object");
  test::expect_api_error(post("/v1/index/duplicates", json{{"filter", {{"a", {{"$in", 3}}}}}}.dump()), 400, "bad_filter",
                         "filter.a.$in: expected an array");
  test::expect_api_error(post("/v1/index/search", json{{"text", "a cat"}, {"vector", {1, 2}}}.dump()), 400, "bad_request",
                         "exactly one query");
  test::expect_api_error(post("/v1/index/search", json{{"vector", {1, 2}}}.dump()), 400, "bad_request", "array of 32 numbers");
  test::expect_api_error(post("/v1/index/search", json{{"text", "a"}, {"min_score", 3}}.dump()), 400, "bad_request",
                         "min_score");
  test::expect_api_error(post("/v1/index/duplicates", json{{"threshold", "high"}}.dump()), 400, "bad_request", "threshold");
  // A good filter and a score threshold.
  auto r = search({{"year", {{"$gte", 2021}}}});
  ASSERT_EQ(status_of(r), 200);
  json res = json::parse(r->body)["results"];
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0]["id"], "b");
  r = post("/v1/index/search", json{{"image", img}, {"min_score", 0.9999}}.dump());
  res = json::parse(r->body)["results"];
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0]["id"], "a");
}

TEST(ServeLiveIndex, AServerWithoutALiveIndexAnswers501) {
  const std::string dir = test::make_temp_dir("live_http_none");
  serve::ClipService clip(ClipRunner::open(test::write_tiny_clip(dir)), serve::BatcherOptions{}, serve::BatcherOptions{});
  serve::ServerModels m;
  m.clip = &clip;
  test::InProcessServer s(m, {});
  auto c = s.client();
  test::expect_api_error(c.Get("/v1/index"), 501, "not_loaded", "--live-index");
  test::expect_api_error(c.Delete("/v1/index/items/a"), 501, "not_loaded", "--live-index");
  EXPECT_TRUE(json::parse(c.Get("/healthz")->body)["live_index"].is_null());
}

// Near-duplicates (bench/near_duplicate_set.h): 60 generated originals, 40 of them with copies —
// exact, re-encoded as JPEG at quality 75 and 50, resized to 3/4 and 3/2 (and that as a JPEG) —
// added over HTTP; the groups at the default threshold scored over pairs.
TEST(ServeLiveIndex, NearDuplicateGroupsFindCopiesReencodesAndResizes) {
  LiveServer s("live_http_dups");
  auto c = s.client();
  std::map<std::string, int> origin;
  for (const neardup::Item& it : neardup::near_duplicate_set(60, 40, 64, /*seed=*/1)) {
    auto r = c.Post("/v1/index/items", json{{"id", it.id}, {"image", b64(it.bytes)}}.dump(), "application/json");
    ASSERT_EQ(status_of(r), 201) << (r ? r->body : "");
    origin[it.id] = it.origin;
  }
  auto r = c.Post("/v1/index/duplicates", "{}", "application/json");
  ASSERT_EQ(status_of(r), 200);
  const json j = json::parse(r->body);
  EXPECT_NEAR(j["threshold"].get<double>(), index::kDefaultDuplicateThreshold, 1e-6);
  const neardup::PairScore sc = neardup::score_groups(j["groups"].get<std::vector<std::vector<std::string>>>(), origin);
  std::printf("near-duplicates at %.3f: %lld true pairs, found %lld right and %lld wrong: precision %.3f recall %.3f\n",
              j["threshold"].get<double>(), (long long)sc.truth, (long long)sc.right, (long long)sc.wrong, sc.precision,
              sc.recall);
  EXPECT_EQ(sc.truth, 56);
  EXPECT_GE(sc.precision, 0.95);
  EXPECT_GE(sc.recall, 0.95);
}

namespace {

// `mmkit serve --live-index` as a child process; its port once it listens (0 if it exited).
struct Child {
  pid_t pid = 0;
  int port = 0;
};

Child start_serve(const std::string& dir, const std::string& model, const std::string& live) {
  Child s;
  const std::string port_file = dir + "/port";
  std::remove(port_file.c_str());
  s.pid = ::fork();
  if (s.pid == 0) {
    FILE* f = std::freopen((dir + "/serve.log").c_str(), "a", stderr);
    (void)f;
    const std::string bin = std::string(MMKIT_BINARY_DIR) + "/mmkit";
    ::execl(bin.c_str(), bin.c_str(), "serve", "--model", model.c_str(), "--live-index", live.c_str(), "--host",
            "127.0.0.1", "--port", "0", "--port-file", port_file.c_str(), "--threads", "1", (char*)nullptr);
    _exit(127);
  }
  for (int i = 0; i < 1200 && !s.port; ++i) {  // up to 60 s (sanitizer builds start slowly)
    std::ifstream f(port_file);
    if (!(f >> s.port)) s.port = 0;
    int st = 0;
    if (!s.port && ::waitpid(s.pid, &st, WNOHANG) == s.pid) {
      s.pid = 0;
      break;
    }
    if (!s.port) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return s;
}

std::string read_log(const std::string& dir) {
  std::ifstream f(dir + "/serve.log");
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace

TEST(ServeLiveIndex, SigkillDuringAStreamOfAddsKeepsEveryAcknowledgedAdd) {
  const std::string dir = test::make_temp_dir("live_sigkill");
  const std::string model = test::write_tiny_clip(dir), live = dir + "/live";
  std::set<std::string> acked;
  int next = 0;
  for (int round = 0; round < 2; ++round) {
    Child s = start_serve(dir, model, live);
    ASSERT_GT(s.port, 0) << read_log(dir);
    auto c = test::loopback_client(s.port);
    // Everything acknowledged so far survived the previous kill.
    const json st = json::parse(c.Get("/v1/index")->body);
    EXPECT_GE(st["size"].get<size_t>(), acked.size());
    for (auto& id : acked) EXPECT_EQ(status_of(c.Get(("/v1/index/items/" + id).c_str())), 200) << id << " was lost";
    // A stream of adds from two clients; the server is killed once 60 more are acknowledged.
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<int> counter{next}, new_acks{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&] {
        auto cl = test::loopback_client(s.port);
        while (!stop) {
          const int i = counter++;
          json body = {{"id", "k" + std::to_string(i)}, {"image", b64_png(test::shape_image(i, 32))}, {"metadata", {{"i", i}}}};
          auto r = cl.Post("/v1/index/items", body.dump(), "application/json");
          if (status_of(r) == 201) {
            std::lock_guard<std::mutex> l(mu);
            acked.insert("k" + std::to_string(i));
            ++new_acks;
          } else if (r) {
            ADD_FAILURE() << r->status << " " << r->body;
            return;
          } else {
            return;  // the connection died with the server
          }
        }
      });
    while (new_acks < 60 && counter < next + 5000) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ::kill(s.pid, SIGKILL);
    int wst = 0;
    ::waitpid(s.pid, &wst, 0);
    EXPECT_TRUE(WIFSIGNALED(wst));
    stop = true;
    for (auto& t : ts) t.join();
    next = counter;
  }
  // The last restart: the index loads (at most a torn last record dropped) and has every ack.
  Child s = start_serve(dir, model, live);
  ASSERT_GT(s.port, 0) << read_log(dir);
  auto c = test::loopback_client(s.port);
  EXPECT_GE(acked.size(), 120u);
  for (auto& id : acked) EXPECT_EQ(status_of(c.Get(("/v1/index/items/" + id).c_str())), 200) << id << " was lost";
  const json st = json::parse(c.Get("/v1/index")->body);
  EXPECT_GE(st["size"].get<size_t>(), acked.size());
  EXPECT_LE(st["size"].get<size_t>(), acked.size() + 4);  // at most the adds in flight at each kill
  ::kill(s.pid, SIGTERM);
  int wst = 0;
  ::waitpid(s.pid, &wst, 0);
  EXPECT_TRUE(WIFEXITED(wst) && WEXITSTATUS(wst) == 0) << read_log(dir);
}
