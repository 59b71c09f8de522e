// OpenAI's embeddings API and model list on an in-process server with two tiny
// seeded CLIPs under two names: OpenAI's request and response shapes (float and
// base64 encodings, Jina-style image items, usage), embeddings equal to
// ClipRunner's for the same inputs and model, the request's "model" picking the
// model, unknown models and malformed inputs answered with OpenAI's error shape
// and a 4xx naming the problem. The official npm client runs against the CLI's
// server in tests/openai/ (.ci/run).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <cstring>
#include <mutex>

#include "api_server.h"
#include "mmkit/serve/request_limits.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::serve;
using json = nlohmann::json;

namespace {

struct Env {
  std::string dir, model_a, model_b;
  std::vector<std::string> files;
  std::unique_ptr<ClipRunner> ref_a, ref_b;  // the offline path the server must agree with
  std::mutex engine;
  std::unique_ptr<ClipService> a, b;
  std::unique_ptr<test::InProcessServer> server;  // last: stopped before the models go
};

Env* env = nullptr;

std::string b64_png(const Image& im) {
  std::vector<uint8_t> png = encode_png(im);
  return encode_base64(png.data(), png.size());
}

// |got - want| <= 1e-6 + 1e-5 |want| everywhere (the server batches; ClipRunner runs one call).
void expect_row(const json& got, const float* want, int64_t E, const std::string& what) {
  ASSERT_TRUE(got.is_array()) << what;
  ASSERT_EQ(int64_t(got.size()), E) << what;
  for (int64_t k = 0; k < E; ++k) {
    const float g = got[size_t(k)].get<float>();
    ASSERT_LE(std::fabs(g - want[k]), 1e-6f + 1e-5f * std::fabs(want[k])) << what << " [" << k << "]: " << g << " vs " << want[k];
  }
}

class ServeOpenAI : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    env->dir = test::make_temp_dir("serve_openai");
    env->model_a = test::write_tiny_clip(env->dir, 7);
    env->model_b = test::write_tiny_clip(env->dir, 8);
    env->ref_a = std::make_unique<ClipRunner>(ClipRunner::open(env->model_a));
    env->ref_b = std::make_unique<ClipRunner>(ClipRunner::open(env->model_b));
    env->a = std::make_unique<ClipService>(ClipRunner::open(env->model_a), BatcherOptions{8, 2, 256},
                                           BatcherOptions{8, 2, 256}, 0, &env->engine);
    env->b = std::make_unique<ClipService>(ClipRunner::open(env->model_b), BatcherOptions{8, 2, 256},
                                           BatcherOptions{8, 2, 256}, 0, &env->engine);
    ServerModels m;
    m.clip = env->a.get();
    m.clip_name = "tiny-a";
    m.clips = {{"tiny-a", env->a.get()}, {"tiny-b", env->b.get()}};
    ServerOptions so;
    so.limits.max_items = 8;
    so.limits.max_text_bytes = 200;
    env->server = std::make_unique<test::InProcessServer>(m, so);
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
  }
  json post(const json& body, int want_status) { return env->server->post("/v1/embeddings", body, want_status); }
  // OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
  void expect_openai_error(const json& j, const std::string& code, const std::string& param, const std::string& needle) {
    ASSERT_TRUE(j.contains("error")) << j.dump();
    const json& e = j["error"];
    EXPECT_EQ(e["code"], code) << j.dump();
    EXPECT_EQ(e["type"], "invalid_request_error") << j.dump();
    if (param.empty())
      EXPECT_TRUE(e["param"].is_null()) << j.dump();
    else
      EXPECT_EQ(e["param"], param) << j.dump();
    EXPECT_NE(e["message"].get<std::string>().find(needle), std::string::npos) << "want '" << needle << "' in " << j.dump();
  }
};

TEST_F(ServeOpenAI, TextsInOpenAIsShapeEqualTheOfflineEmbeddings) {
  const std::vector<std::string> texts = {"a photo of a red circle.", "two blue squares"};
  json j = post({{"model", "tiny-a"}, {"input", texts}}, 200);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "tiny-a");
  ASSERT_EQ(j["data"].size(), 2u);
  Tensor want = env->ref_a->embed_texts(texts, true);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    expect_row(j["data"][i]["embedding"], want.f32() + i * 32, 32, "text " + std::to_string(i));
  }
  // Tokens up to and including the end token: CLIP's rows are zero after it (id 0, '!', is in
  // neither text).
  size_t tokens = 0;
  for (auto& ids : env->ref_a->tokenize(texts))
    for (int32_t id : ids) tokens += id != 0;
  EXPECT_GT(tokens, 4u);
  EXPECT_EQ(j["usage"]["prompt_tokens"], tokens);
  EXPECT_EQ(j["usage"]["total_tokens"], tokens);
  // A single string is one input.
  json one = post({{"model", "tiny-a"}, {"input", texts[1]}}, 200);
  ASSERT_EQ(one["data"].size(), 1u);
  expect_row(one["data"][0]["embedding"], want.f32() + 32, 32, "single string");
}

TEST_F(ServeOpenAI, Base64IsLittleEndianFloat32OfTheSameEmbedding) {
  // Both compared calls after a first one: a tower's first call reads its weights in place, later
  // ones use them packed (infer/packed_linear.h), which can change the last bits.
  post({{"model", "tiny-a"}, {"input", {"a green bar"}}}, 200);
  json f = post({{"model", "tiny-a"}, {"input", {"a green bar"}}, {"encoding_format", "float"}}, 200);
  json b = post({{"model", "tiny-a"}, {"input", {"a green bar"}}, {"encoding_format", "base64"}}, 200);
  ASSERT_TRUE(b["data"][0]["embedding"].is_string()) << b.dump();
  std::vector<uint8_t> bytes = decode_base64(b["data"][0]["embedding"].get<std::string>(), "embedding");
  ASSERT_EQ(bytes.size(), 32u * 4);
  std::vector<float> got(32);
  std::memcpy(got.data(), bytes.data(), bytes.size());
  EXPECT_EQ(got, f["data"][0]["embedding"].get<std::vector<float>>());  // bit for bit
}

TEST_F(ServeOpenAI, JinaImageItemsMixWithTextsInInputOrder) {
  const Image im0 = test::shape_image(0), im1 = test::shape_image(1);
  json j = post({{"model", "tiny-a"},
                 {"input", json::array({{{"text", "a red circle"}}, {{"image", "data:image/png;base64," + b64_png(im0)}},
                                        "two blue squares", {{"image", b64_png(im1)}}})}},
                200);
  ASSERT_EQ(j["data"].size(), 4u) << j.dump();
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(j["data"][i]["index"], i);
  Tensor t = env->ref_a->embed_texts({"a red circle", "two blue squares"}, true);
  Tensor im = env->ref_a->embed_images({im0, im1}, true);
  expect_row(j["data"][0]["embedding"], t.f32(), 32, "text item");
  expect_row(j["data"][1]["embedding"], im.f32(), 32, "data URL image");
  expect_row(j["data"][2]["embedding"], t.f32() + 32, 32, "plain string");
  expect_row(j["data"][3]["embedding"], im.f32() + 32, 32, "raw base64 image");
}

TEST_F(ServeOpenAI, TheModelFieldPicksTheModelAndTheOldShapeStillWorks) {
  json a = post({{"model", "tiny-a"}, {"input", "a red circle"}}, 200);
  json b = post({{"model", "tiny-b"}, {"input", "a red circle"}}, 200);
  EXPECT_EQ(b["model"], "tiny-b");
  Tensor wb = env->ref_b->embed_texts({"a red circle"}, true);
  expect_row(b["data"][0]["embedding"], wb.f32(), 32, "tiny-b");
  EXPECT_NE(a["data"][0]["embedding"], b["data"][0]["embedding"]);
  // The server's own shape: the default model without "model", the named one with it.
  // (Compared with ClipRunner to rounding: a tower's first call reads its weights in place, later
  // ones use them packed, infer/packed_linear.h, which can change the last bits.)
  Tensor wa = env->ref_a->embed_texts({"a red circle"}, true);
  json old = post({{"texts", {"a red circle"}}}, 200);
  EXPECT_EQ(old["model"], "tiny-a");
  expect_row(old["text_embeddings"][0], wa.f32(), 32, "old shape, default model");
  json old_b = post({{"texts", {"a red circle"}}, {"model", "tiny-b"}}, 200);
  EXPECT_EQ(old_b["model"], "tiny-b");
  expect_row(old_b["text_embeddings"][0], wb.f32(), 32, "old shape, tiny-b");
  // Without "model", OpenAI's shape uses the default too.
  EXPECT_EQ(post({{"input", "a red circle"}}, 200)["model"], "tiny-a");
}

TEST_F(ServeOpenAI, UnknownModelsAre404NamingTheServedOnes) {
  json j = post({{"model", "text-embedding-3-small"}, {"input", "a cat"}}, 404);
  expect_openai_error(j, "model_not_found", "model", "'text-embedding-3-small' is not served here; served: 'tiny-a', 'tiny-b'");
  expect_openai_error(post({{"model", "nope"}, {"texts", {"a cat"}}}, 404), "model_not_found", "model", "'nope'");
  auto c = env->server->client();
  auto r = c.Get("/v1/models/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  expect_openai_error(json::parse(r->body), "model_not_found", "model", "'tiny-a', 'tiny-b'");
}

TEST_F(ServeOpenAI, ModelsAreListedInOpenAIsShape) {
  auto c = env->server->client();
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["id"], "tiny-a");
  EXPECT_EQ(j["data"][1]["id"], "tiny-b");
  for (auto& m : j["data"]) {
    EXPECT_EQ(m["object"], "model");
    EXPECT_TRUE(m["created"].is_number_integer());
    EXPECT_EQ(m["owned_by"], "mmkit");
    EXPECT_EQ(m["embed_dim"], 32);
  }
  auto one = c.Get("/v1/models/tiny-b");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  EXPECT_EQ(json::parse(one->body)["id"], "tiny-b");
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["models"], json({"tiny-a", "tiny-b"}));
}

TEST_F(ServeOpenAI, BadRequestsGetOpenAIsErrorShapeNamingTheProblem) {
  expect_openai_error(post({{"input", "a"}, {"encoding_format", "int8"}}, 400), "bad_request", "encoding_format", "'int8'");
  expect_openai_error(post({{"input", "a"}, {"dimensions", 16}}, 400), "unsupported_dimensions", "dimensions",
                      "makes 32-dimensional embeddings");
  EXPECT_EQ(post({{"input", "a"}, {"dimensions", 32}}, 200)["data"][0]["embedding"].size(), 32u);
  expect_openai_error(post({{"input", json::array()}}, 400), "bad_request", "input", "empty array");
  expect_openai_error(post({{"input", {1, 2, 3}}}, 400), "bad_request", "input", "token ids are not accepted");
  expect_openai_error(post({{"input", {{1, 2}, {3}}}}, 400), "bad_request", "input", "input[0]: token ids");
  expect_openai_error(post({{"input", 5.5}}, 400), "bad_request", "input", "must be a string or an object");
  expect_openai_error(post({{"input", {{{"text", "a"}, {"image", "b"}}}}}, 400), "bad_request", "input",
                      "exactly one of \"text\" and \"image\"");
  expect_openai_error(post({{"input", {{{"image", "https://example.com/cat.png"}}}}}, 400), "bad_image", "input",
                      "input[0].image is a URL");
  expect_openai_error(post({{"input", {{{"image", "!!!"}}}}}, 400), "bad_base64", "", "input[0].image");
  expect_openai_error(post({{"input", {""}}}, 400), "bad_text", "", "input[0]: empty text");
  expect_openai_error(post({{"input", std::vector<std::string>(9, "a")}}, 400), "too_many_items", "input", "9 inputs");
  expect_openai_error(post({{"model", 3}, {"input", "a"}}, 400), "bad_request", "model", "'model' must be a string");
}

}  // namespace
