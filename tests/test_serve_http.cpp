// The HTTP API against an in-process server on an ephemeral loopback port,
// with a tiny seeded CLIP: embeddings equal ClipRunner's for the same input,
// limits give 4xx JSON errors naming the problem, absent models give 501,
// concurrent requests each get their own result, and every route (the page,
// /healthz and /metrics included) answers through the one error wrapper.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include <thread>

#include "api_server.h"
#include "mmkit/serve/api_error.h"
#include "mmkit/serve/dynamic_batcher.h"
#include "mmkit/serve/request_limits.h"
#include "route_util.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::serve;
using json = nlohmann::json;

namespace {

struct Env {
  std::string dir, model;
  std::vector<std::string> files;
  std::unique_ptr<ClipRunner> ref;  // the offline path the server must agree with
  std::unique_ptr<ClipService> clip;
  std::unique_ptr<index::EmbeddingIndex> idx;
  std::unique_ptr<test::InProcessServer> server;  // last: stopped before the models go
};

Env* env = nullptr;

std::string b64_file(const std::string& p) {
  std::vector<uint8_t> png = encode_png(decode_image_file(p));
  return encode_base64(png.data(), png.size());
}

std::string b64_png(const Image& im) {
  std::vector<uint8_t> png = encode_png(im);
  return encode_base64(png.data(), png.size());
}

class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    env->dir = test::make_temp_dir("serve_http");
    std::string images = env->dir + "/images";
    ::mkdir(images.c_str(), 0755);
    env->files = test::write_shape_images(images, 12);
    env->model = test::write_tiny_clip(env->dir);
    env->ref = std::make_unique<ClipRunner>(ClipRunner::open(env->model));  // tokenizer from the file
    {
      ClipRunner builder = ClipRunner::open(env->model);
      index::BuildOptions o;
      o.images_dir = images;
      o.out_dir = env->dir + "/idx";
      o.progress = false;
      index::build_index(builder, o);
    }
    env->idx = index::EmbeddingIndex::open(env->dir + "/idx");
    env->clip = std::make_unique<ClipService>(ClipRunner::open(env->model), BatcherOptions{8, 2, 256},
                                              BatcherOptions{8, 2, 256});
    ServerModels m;
    m.clip = env->clip.get();
    m.clip_name = "tiny";
    m.index = env->idx.get();
    ServerOptions so;
    so.limits.max_body_bytes = 1 << 20;
    so.limits.max_image_pixels = 100 * 100;
    so.limits.max_text_bytes = 200;
    so.limits.max_items = 8;
    env->server = std::make_unique<test::InProcessServer>(m, so);
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
  }

  httplib::Client client() { return env->server->client(); }
  json post(const std::string& path, const json& body, int want_status) {
    return env->server->post(path, body, want_status);
  }
  void expect_error(const httplib::Result& r, int status, const std::string& code, const std::string& needle) {
    test::expect_api_error(r, status, code, needle);
  }
};

void expect_rows(const json& got, const Tensor& want, const std::string& what) {
  const int64_t E = want.shape()[-1];
  ASSERT_EQ(int64_t(got.size()), want.numel() / E) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    std::vector<float> row = got[i].get<std::vector<float>>();
    ASSERT_EQ(int64_t(row.size()), E);
    EXPECT_TRUE(test::close(what + " row " + std::to_string(i), Tensor::from_vector(Shape{1, E}, row),
                            Tensor::from_vector(Shape{1, E}, std::vector<float>(want.f32() + int64_t(i) * E,
                                                                                 want.f32() + int64_t(i + 1) * E)),
                            1e-6f, 1e-5f));
  }
}

}  // namespace

TEST_F(ServeHttp, HealthzReportsWhatIsLoaded) {
  auto c = client();
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["clip"]["embed_dim"], 32);
  EXPECT_EQ(j["clip"]["text"], env->clip->has_text());
  EXPECT_EQ(j["index"]["size"], 12);
  EXPECT_TRUE(j["vqa"].is_null());      // tests/test_serve_vqa_caption.cpp loads both
  EXPECT_TRUE(j["caption"].is_null());
  EXPECT_EQ(j["classify"], false);
}

TEST_F(ServeHttp, ThePageAndItsAssetsComeFromTheServer) {
  auto c = client();
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("<script src=\"/app.js\">"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos) << "the page must not load external assets";
  EXPECT_EQ(r->body.find("https://"), std::string::npos) << "the page must not load external assets";
  for (const char* p : {"/app.js", "/style.css"}) {
    auto a = c.Get(p);
    ASSERT_TRUE(a) << p;
    EXPECT_EQ(a->status, 200) << p;
    EXPECT_GT(a->body.size(), 100u) << p;
  }
}

TEST_F(ServeHttp, ImageEmbeddingsMatchClipRunner) {
  std::vector<Image> imgs = {decode_image_file(env->files[0]), decode_image_file(env->files[5])};
  json j = post("/v1/embeddings", {{"images", {b64_file(env->files[0]), b64_file(env->files[5])}}}, 200);
  EXPECT_EQ(j["dim"], 32);
  EXPECT_TRUE(j["text_embeddings"].empty());
  expect_rows(j["image_embeddings"], env->ref->embed_images(imgs, true), "normalised");
  json raw = post("/v1/embeddings", {{"image", b64_file(env->files[0])}, {"normalize", false}}, 200);
  expect_rows(raw["image_embeddings"], env->ref->embed_images({imgs[0]}, false), "raw");
}

TEST_F(ServeHttp, MultipartUploadsGiveTheSameEmbeddings) {
  std::string png;
  {
    std::vector<uint8_t> b = encode_png(decode_image_file(env->files[3]));
    png.assign(b.begin(), b.end());
  }
  auto c = client();
  httplib::MultipartFormDataItems items = {{"image", png, "x.png", "image/png"}, {"normalize", "true", "", ""}};
  auto r = c.Post("/v1/embeddings", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  expect_rows(json::parse(r->body)["image_embeddings"], env->ref->embed_images({decode_image_file(env->files[3])}, true),
              "multipart");
}

TEST_F(ServeHttp, TextEmbeddingsAndZeroShotMatchClipRunner) {
  ASSERT_TRUE(env->clip->has_text()) << env->clip->text_error();
  std::vector<std::string> texts = {"a photo of a cat.", "a red circle", "two green bars"};
  json j = post("/v1/embeddings", {{"texts", texts}}, 200);
  expect_rows(j["text_embeddings"], env->ref->embed_texts(texts, true), "texts");
  std::vector<std::string> labels = {"circle", "square", "bar"};
  Image img = decode_image_file(env->files[2]);
  json z = post("/v1/zero-shot", {{"image", b64_file(env->files[2])}, {"labels", labels}}, 200);
  ZeroShotResult want = env->ref->zero_shot({img}, labels, {});
  ASSERT_EQ(z["probs"].size(), 3u);
  for (size_t l = 0; l < 3; ++l) EXPECT_NEAR(z["probs"][l].get<double>(), want.probs[0][l], 1e-5) << l;
  EXPECT_EQ(z["best"], want.best[0]);
  // Labels as one comma-separated string, and cached label embeddings, give the same answer.
  json z2 = post("/v1/zero-shot", {{"image", b64_file(env->files[2])}, {"labels", "circle, square,bar"}}, 200);
  // Same answer; not bit-identical, since the engine packs its weights on the second call and the
  // packed GEMM sums in another order.
  ASSERT_EQ(z2["probs"].size(), 3u);
  for (size_t l = 0; l < 3; ++l) EXPECT_NEAR(z2["probs"][l].get<double>(), z["probs"][l].get<double>(), 1e-6) << l;
  json s = post("/v1/search", {{"text", "a red circle"}, {"top_k", 3}}, 200);
  EXPECT_EQ(s["results"].size(), 3u);
}

TEST_F(ServeHttp, SearchByImageFindsTheImageItselfAndThumbnailsServe) {
  json j = post("/v1/search", {{"image", b64_file(env->files[7])}, {"top_k", 4}}, 200);
  ASSERT_EQ(j["results"].size(), 4u);
  EXPECT_EQ(j["results"][0]["id"], 7);
  EXPECT_EQ(j["results"][0]["name"], "img_00007.png");
  EXPECT_NEAR(j["results"][0]["score"].get<double>(), 1.0, 1e-4);
  auto c = client();
  auto t = c.Get(j["results"][0]["thumb"].get<std::string>().c_str());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, 200);
  EXPECT_EQ(t->get_header_value("Content-Type"), "image/png");
  Image thumb = decode_image_memory(reinterpret_cast<const uint8_t*>(t->body.data()), t->body.size(), "thumb");
  EXPECT_EQ(thumb.width, 48);  // smaller than the thumbnail size: unchanged
  expect_error(c.Get("/v1/thumb/12"), 404, "not_found", "12");
  expect_error(c.Post("/v1/search", json{{"top_k", 3}}.dump(), "application/json"), 400, "bad_request", "exactly one query");
  expect_error(c.Post("/v1/search", json{{"image", b64_file(env->files[0])}, {"top_k", 1000}}.dump(), "application/json"), 400,
               "bad_request", "'top_k' = 1000");
}

TEST_F(ServeHttp, LimitsGiveClearJsonErrors) {
  auto c = client();
  // 413: body over max_body_bytes (1 MiB here), rejected before any parsing.
  std::string big = "{\"images\": [\"" + std::string(2 << 20, 'A') + "\"]}";
  expect_error(c.Post("/v1/embeddings", big, "application/json"), 413, "payload_too_large", "1048576");
  // 413: image over max_image_pixels (100 x 100 here).
  expect_error(c.Post("/v1/embeddings", json{{"images", {b64_png(Image(120, 100, 3))}}}.dump(), "application/json"), 413,
               "image_too_large", "images[0]");
  // 415: a body that is neither JSON nor multipart; an upload that is not PNG/JPEG.
  expect_error(c.Post("/v1/embeddings", "hello", "text/plain"), 415, "unsupported_media_type", "text/plain");
  expect_error(c.Post("/v1/embeddings", json{{"image", encode_base64(reinterpret_cast<const uint8_t*>("GIF89a..."), 9)}}.dump(),
                      "application/json"),
               415, "unsupported_media_type", "not a PNG or JPEG");
  // 400s.
  expect_error(c.Post("/v1/embeddings", "{\"images\": [", "application/json"), 400, "bad_json", "not valid JSON");
  expect_error(c.Post("/v1/embeddings", "[1, 2]", "application/json"), 400, "bad_json", "JSON object");
  expect_error(c.Post("/v1/embeddings", "{}", "application/json"), 400, "bad_request", "nothing to embed");
  expect_error(c.Post("/v1/embeddings", json{{"images", {"!!!"}}}.dump(), "application/json"), 400, "bad_base64", "images[0]");
  expect_error(c.Post("/v1/embeddings", json{{"images", {1, 2}}}.dump(), "application/json"), 400, "bad_request",
               "images[0] must be a string");
  expect_error(c.Post("/v1/embeddings", json{{"texts", {std::string(300, 'a')}}}.dump(), "application/json"), 400,
               "text_too_long", "texts[0]: 300 bytes");
  std::vector<std::string> many(9, b64_file(env->files[0]));
  expect_error(c.Post("/v1/embeddings", json{{"images", many}}.dump(), "application/json"), 400, "too_many_items", "9");
  expect_error(c.Post("/v1/zero-shot", json{{"image", b64_file(env->files[0])}}.dump(), "application/json"), 400,
               "bad_request", "'labels' is required");
  expect_error(c.Get("/v2/nothing"), 404, "not_found", "/v2/nothing");
}

TEST_F(ServeHttp, AbsentModelsAnswer501) {
  auto c = client();
  expect_error(c.Post("/v1/caption", json{{"image", b64_file(env->files[0])}}.dump(), "application/json"), 501,
               "not_loaded", "--caption");
  expect_error(c.Post("/v1/classify", json{{"image", b64_file(env->files[0])}}.dump(), "application/json"), 501,
               "not_loaded", "--classifier");
  expect_error(c.Post("/v1/vqa", json{{"image", b64_file(env->files[0])}, {"question", "what shape?"}}.dump(),
                      "application/json"),
               501, "not_loaded", "--vqa");
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("mmkit_model_loaded{model=\"vqa\"} 0"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("mmkit_model_loaded{model=\"index\"} 1"), std::string::npos) << m->body;
}

TEST_F(ServeHttp, ConcurrentRequestsAreBatchedAndEachGetsItsOwnEmbedding) {
  Tensor want = env->ref->embed_images(
      [] {
        std::vector<Image> v;
        for (auto& f : env->files) v.push_back(decode_image_file(f));
        return v;
      }(),
      true);
  const int64_t before = env->clip->image_stats().items;
  std::vector<std::string> b64;
  for (auto& f : env->files) b64.push_back(b64_file(f));
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 12; ++t)
    ts.emplace_back([&, t] {
      httplib::Client c = env->server->client();
      for (int rep = 0; rep < 5; ++rep) {
        size_t i = size_t((t + rep) % 12);
        auto r = c.Post("/v1/embeddings", json{{"image", b64[i]}}.dump(), "application/json");
        if (!r || r->status != 200) {
          ++bad;
          continue;
        }
        std::vector<float> got = json::parse(r->body)["image_embeddings"][0].get<std::vector<float>>();
        for (int64_t e = 0; e < 32; ++e)
          if (std::fabs(got[size_t(e)] - want.f32()[int64_t(i) * 32 + e]) > 1e-5f) {
            ++bad;
            break;
          }
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  auto s = env->clip->image_stats();
  EXPECT_EQ(s.items - before, 60);
  EXPECT_LE(s.batch_sizes.size(), 9u);  // max_batch 8
  // Metrics saw them.
  auto c = client();
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("mmkit_requests_total{route=\"/v1/embeddings\",status=\"200\"}"), std::string::npos);
  EXPECT_NE(m->body.find("mmkit_batches_total{tower=\"image\"}"), std::string::npos);
}

// A model file without a tokenizer (and none beside it): image routes work,
// text routes answer 501 naming the missing tokenizer, /healthz says text is off.
TEST(ServeHttpNoTokenizer, TextRoutesAnswer501) {
  std::string dir = test::make_temp_dir("serve_notok");
  std::string model = test::write_tiny_clip(dir, 3, test::serve_clip_config(), /*with_tokenizer=*/false);
  ClipService clip(ClipRunner::open(model), BatcherOptions{4, 1, 64}, BatcherOptions{4, 1, 64});
  EXPECT_FALSE(clip.has_text());
  ServerModels m;
  m.clip = &clip;
  test::InProcessServer server(m, ServerOptions{});
  httplib::Client c = server.client();
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["clip"]["text"], false);
  auto r = c.Post("/v1/embeddings", json{{"texts", {"a cat"}}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 501) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "no_text_model");
  EXPECT_NE(r->body.find("tokenizer"), std::string::npos) << r->body;
  // Issue #23: where the model lives is the server's business, not the client's.
  EXPECT_EQ(r->body.find(dir), std::string::npos) << r->body;
  EXPECT_EQ(h->body.find(dir), std::string::npos) << h->body;
  auto z = c.Post("/v1/zero-shot", json{{"image", b64_png(test::shape_image(0))}, {"labels", "a,b"}}.dump(), "application/json");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->status, 501) << z->body;
  auto s = c.Post("/v1/search", json{{"text", "x"}}.dump(), "application/json");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 501) << s->body;  // no index either
  auto e = c.Post("/v1/embeddings", json{{"image", b64_png(test::shape_image(0))}}.dump(), "application/json");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 200) << e->body;
}

// Issue #18: a SigLIP folder served like a CLIP; /v1/zero-shot says its probabilities are
// per-label sigmoids and gives what ClipRunner::zero_shot (checked against PyTorch in
// test_siglip.cpp) gives.
TEST(ServeHttpSiglip, ZeroShotAnswersSigmoidProbabilities) {
  const std::string dir = test::fixture("siglip_tiny");
  ClipService clip(ClipRunner::open(dir), BatcherOptions{4, 1, 64}, BatcherOptions{4, 1, 64});
  EXPECT_TRUE(clip.has_text());
  ServerModels m;
  m.clip = &clip;
  test::InProcessServer server(m, ServerOptions{});
  const std::vector<std::string> labels = {"cat", "dog", "red car"};
  json z = server.post("/v1/zero-shot", {{"image", b64_file(dir + "/image_0.png")}, {"labels", labels},
                                         {"templates", {"a photo of a {}."}}}, 200);
  EXPECT_EQ(z["probabilities"], "sigmoid");
  ClipRunner ref = ClipRunner::open(dir);
  ZeroShotResult want = ref.zero_shot({decode_image_file(dir + "/image_0.png")}, labels, {"a photo of a {}."});
  ASSERT_EQ(z["probs"].size(), labels.size());
  double sum = 0;
  for (size_t l = 0; l < labels.size(); ++l) {
    EXPECT_NEAR(z["probs"][l].get<double>(), want.probs[0][l], 1e-5) << labels[l];
    sum += z["probs"][l].get<double>();
  }
  EXPECT_GT(std::fabs(sum - 1.0), 0.1) << "independent sigmoids, not a softmax";
  json e = server.post("/v1/embeddings", {{"texts", {"a photo of a cat."}}}, 200);
  EXPECT_EQ(e["dim"], 32);
}

// answer_route is the wrapper every route runs in: whatever a handler throws
// becomes the error JSON with its status, and the request is counted.
TEST(ServeRouteWrapper, EveryFailureBecomesErrorJsonAndIsCounted) {
  struct Case {
    std::function<void()> handler;
    int status;
    std::string code, needle;
  };
  const std::vector<Case> cases = {
      {[] { api_fail(418, "teapot", "short and stout"); }, 418, "teapot", "short and stout"},
      {[] { throw QueueFull("request queue is full"); }, 503, "overloaded", "retry later"},
      {[] { fail("bad file x.png"); }, 400, "bad_request", "x.png"},
      {[] { throw std::runtime_error("disk on fire"); }, 500, "internal", "disk on fire"},
      {[] { throw 42; }, 500, "internal", "unknown error"},
  };
  Metrics metrics;
  std::map<int, int64_t> counted;
  for (const Case& c : cases) {
    httplib::Response res;
    answer_route(metrics, "/route", res, c.handler);
    EXPECT_EQ(res.status, c.status) << res.body;
    EXPECT_EQ(res.get_header_value("Content-Type"), "application/json");
    json j = json::parse(res.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << res.body;
    EXPECT_EQ(j["error"]["code"], c.code) << res.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.needle), std::string::npos) << res.body;
    EXPECT_EQ(metrics.count("/route", c.status), ++counted[c.status]) << c.code;
  }
  httplib::Response ok;
  answer_route(metrics, "/route", ok, [&] { ok.set_content("fine", "text/plain"); });
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(metrics.count("/route", 200), 1);
}

// Each route of the table, and the static files, answer through answer_route:
// errors have the JSON shape, and every request shows up in /metrics under its
// route (which the unwrapped /metrics and /v1/metrics used not to).
TEST_F(ServeHttp, EveryRouteAnswersThroughTheWrapper) {
  auto c = client();
  const std::string img = b64_file(env->files[0]);
  for (const char* p : {"/", "/app.js", "/style.css", "/healthz", "/metrics", "/v1/metrics", "/v1/thumb/0"}) {
    auto r = c.Get(p);
    ASSERT_TRUE(r) << p;
    EXPECT_EQ(r->status, 200) << p << ": " << r->body;
  }
  expect_error(c.Post("/v1/embeddings", "{}", "application/json"), 400, "bad_request", "nothing to embed");
  expect_error(c.Post("/v1/zero-shot", "{}", "application/json"), 400, "bad_request", "exactly one image");
  expect_error(c.Post("/v1/search", "{}", "application/json"), 400, "bad_request", "exactly one query");
  expect_error(c.Get("/v1/thumb/99999999999999999999"), 404, "not_found", "99999999999999999999");
  expect_error(c.Post("/v1/classify", json{{"image", img}}.dump(), "application/json"), 501, "not_loaded", "--classifier");
  expect_error(c.Post("/v1/vqa", "{}", "application/json"), 501, "not_loaded", "--vqa");
  expect_error(c.Post("/v1/caption", "{}", "application/json"), 501, "not_loaded", "--caption");
  // A known path with the other method is no route (httplib has no 405): the same JSON shape.
  expect_error(c.Post("/healthz", "{}", "application/json"), 404, "not_found", "POST /healthz");
  expect_error(c.Get("/v1/embeddings"), 404, "not_found", "GET /v1/embeddings");

  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  for (const char* want : {"route=\"/\",status=\"200\"", "route=\"/assets\",status=\"200\"",
                           "route=\"/healthz\",status=\"200\"", "route=\"/metrics\",status=\"200\"",
                           "route=\"/v1/metrics\",status=\"200\"", "route=\"/v1/thumb\",status=\"200\"",
                           "route=\"/v1/thumb\",status=\"404\"", "route=\"/v1/embeddings\",status=\"400\"",
                           "route=\"/v1/zero-shot\",status=\"400\"", "route=\"/v1/search\",status=\"400\"",
                           "route=\"/v1/classify\",status=\"501\"", "route=\"/v1/vqa\",status=\"501\"",
                           "route=\"/v1/caption\",status=\"501\"", "route=\"other\",status=\"404\""})
    EXPECT_NE(m->body.find(std::string("mmkit_requests_total{") + want + "}"), std::string::npos)
        << want << " missing from\n" << m->body;
  // The connection loop's gauges: this client's keep-alive connection is open.
  EXPECT_NE(m->body.find("mmkit_connections_open "), std::string::npos) << m->body;
  EXPECT_EQ(m->body.find("mmkit_connections_open 0\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("mmkit_connections_accepted_total "), std::string::npos) << m->body;
}

// A route failing inside (here a thumbnail whose image file is gone) answers
// the error JSON naming the item (its file name, never the path: issue #23) and
// stays counted; the server keeps serving.
TEST(ServeRedactPaths, AbsolutePathsBecomeFileNames) {
  EXPECT_EQ(redact_paths("cannot open /home/u/models/clip.safetensors: No such file"), "cannot open clip.safetensors: No such file");
  EXPECT_EQ(redact_paths("no tokenizer beside '/a/b/m.safetensors' (tried /a/b/vocab.json)"),
            "no tokenizer beside 'm.safetensors' (tried vocab.json)");
  EXPECT_EQ(redact_paths("a/b stays, /single stays, 3/4 stays"), "a/b stays, /single stays, 3/4 stays");
}

TEST(ServeHttpFailures, AThumbnailOfAVanishedFileIsAnErrorJson) {
  std::string dir = test::make_temp_dir("serve_thumb_gone");
  std::string images = dir + "/images";
  ::mkdir(images.c_str(), 0755);
  std::vector<std::string> files = test::write_shape_images(images, 3);
  std::string model = test::write_tiny_clip(dir);
  {
    ClipRunner builder = ClipRunner::open(model);
    index::BuildOptions o;
    o.images_dir = images;
    o.out_dir = dir + "/idx";
    o.progress = false;
    index::build_index(builder, o);
  }
  auto idx = index::EmbeddingIndex::open(dir + "/idx");
  ClipService clip(ClipRunner::open(model), BatcherOptions{4, 1, 64}, BatcherOptions{4, 1, 64});
  ServerModels m;
  m.clip = &clip;
  m.index = idx.get();
  test::InProcessServer server(m, ServerOptions{});
  httplib::Client c = server.client();
  auto first = c.Get("/v1/thumb/0");  // made now and cached (ThumbnailCache)
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  ASSERT_EQ(std::remove(files[1].c_str()), 0);
  auto gone = c.Get("/v1/thumb/1");
  test::expect_api_error(gone, 404, "image_unavailable", "img_00001.png");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->body.find(dir), std::string::npos) << gone->body;
  // A file replaced by a symlink to a non-image: neither its path nor its bytes reach the client.
  const std::string secret = dir + "/secret.txt";
  std::ofstream(secret) << "SECRET-CONTENTS of a private file";
  ASSERT_EQ(::symlink(secret.c_str(), files[1].c_str()), 0);
  auto sym = c.Get("/v1/thumb/1");
  test::expect_api_error(sym, 404, "image_unavailable", "img_00001.png");
  ASSERT_TRUE(sym);
  EXPECT_EQ(sym->body.find("SECRET"), std::string::npos) << sym->body;
  EXPECT_EQ(sym->body.find(dir), std::string::npos) << sym->body;
  // Thumbnail 0 comes from the cache: its original is not read again.
  ASSERT_EQ(std::remove(files[0].c_str()), 0);
  auto ok = c.Get("/v1/thumb/0");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, first->body);
  auto mt = c.Get("/metrics");
  ASSERT_TRUE(mt);
  EXPECT_NE(mt->body.find("mmkit_requests_total{route=\"/v1/thumb\",status=\"404\"} 2"), std::string::npos) << mt->body;

  // Originals above the server's pixel limit get no thumbnail (the limit uploads have).
  ServerOptions small;
  small.limits.max_image_pixels = 100;
  test::InProcessServer strict(m, small);
  httplib::Client sc = strict.client();
  test::expect_api_error(sc.Get("/v1/thumb/2"), 404, "image_unavailable", "img_00002.png");
}
