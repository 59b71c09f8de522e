// /v1/vqa and /v1/caption against an in-process server holding tiny seeded
// VQA and caption models (a few training steps on generated Sort-of-CLEVR):
// answers and captions equal the library's (answer_question, caption_images)
// and the `mmkit vqa` / `mmkit caption` CLI's for the same image, JSON and
// multipart uploads alike; every bad request gets its own 4xx JSON error;
// concurrent requests each get their own result; /healthz and the metrics say
// what is loaded and count the routes; `mmkit serve --vqa --caption` serves
// the same files.
#include <gtest/gtest.h>
#include <httplib.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "api_server.h"
#include "mmkit/data/soc_captions.h"
#include "mmkit/data/sort_of_clevr.h"
#include "mmkit/infer/caption_images.h"
#include "mmkit/infer/vqa_answer.h"
#include "mmkit/serve/request_limits.h"
#include "mmkit/train/caption_trainer.h"
#include "mmkit/train/vqa_trainer.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::serve;
using json = nlohmann::json;

namespace {

struct Question {
  std::string image, question;  // image: absolute path
};

struct Env {
  std::string dir, clip_path, vqa_dir, cap_dir, soc_dir, cap_data;
  std::vector<Question> questions;   // from the VQA training data: every word is known
  std::vector<std::string> cap_images;
  std::unique_ptr<Vqa> vqa_ref;  // the library path the server must agree with
  std::unique_ptr<CaptionModel> cap_ref;
  std::unique_ptr<ClipService> clip;
  std::unique_ptr<VqaService> vqa;
  std::unique_ptr<CaptionService> cap;
  std::unique_ptr<test::InProcessServer> server;  // last: stopped before the models go
};

Env* env = nullptr;

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

std::string b64_file(const std::string& p) {
  std::string bytes = slurp(p);  // the PNG file as it is on disk, as a client would send it
  return encode_base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string b64_png(const Image& im) {
  std::vector<uint8_t> png = encode_png(im);
  return encode_base64(png.data(), png.size());
}

// `mmkit ARGS` with stdout captured (test_util.h's run_mmkit discards it).
struct Cli {
  int code;
  std::string out, err;
};
Cli run_cli(const std::string& args) {
  std::string cmd = "timeout 120 " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " > " + env->dir +
                    "/cli_out.txt 2> " + env->dir + "/cli_err.txt";
  int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 1000, slurp(env->dir + "/cli_out.txt"), slurp(env->dir + "/cli_err.txt")};
}

class ServeVqaCaption : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    env->dir = test::make_temp_dir("serve_vqa_cap");
    env->clip_path = test::write_tiny_clip(env->dir);
    // VQA: two steps of training on 8 generated scenes.
    {
      data::SortOfClevrOptions o;
      o.out_dir = env->soc_dir = env->dir + "/soc";
      o.train_images = 8;
      o.test_images = 2;
      o.seed = 11;
      data::write_sort_of_clevr(o);
      train::VqaTrainOptions t;
      t.data_dir = o.out_dir;
      t.out_dir = env->vqa_dir = env->dir + "/vqa";
      t.model.dim = 16;
      t.model.heads = 2;
      t.model.mlp_dim = 32;
      t.model.stem_dim = 8;
      t.model.fusion_layers = 1;
      t.epochs = 1;
      t.batch = 4;
      t.checkpoint_every = 100;
      t.threads = 2;
      t.seed = 5;
      train::train_vqa(t);
      std::ifstream f(o.out_dir + "/train.jsonl");
      std::vector<std::string> lines;
      for (std::string line; std::getline(f, line);) lines.push_back(line);
      for (size_t i = 0; i < lines.size() && i < 50; i += 7) {  // questions of several types and images
        json j = json::parse(lines[i]);
        env->questions.push_back({o.out_dir + "/" + j["image"].get<std::string>(), j["question"]});
      }
    }
    // Captioner: two steps on 16 scenes.
    {
      data::SocCaptionOptions o;
      o.out_dir = env->cap_data = env->dir + "/capdata";
      o.train_images = 16;
      o.test_images = 4;
      o.seed = 12;
      data::write_soc_captions(o);
      train::CaptionTrainOptions t;
      t.data_dir = o.out_dir;
      t.out_dir = env->cap_dir = env->dir + "/cap";
      t.model = test::tiny_captioner_config();
      t.epochs = 1;
      t.batch = 8;
      t.lr = 3e-3f;
      t.val_images = 2;
      t.threads = 2;
      train::train_captioner(t);
      for (int i = 0; i < 4; ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "/images/test_%05d.png", i);
        env->cap_images.push_back(o.out_dir + name);
      }
    }
    env->vqa_ref = std::make_unique<Vqa>(load_vqa(env->vqa_dir));
    env->cap_ref = std::make_unique<CaptionModel>(load_captioner(env->cap_dir));
    env->clip = std::make_unique<ClipService>(ClipRunner::open(env->clip_path), BatcherOptions{8, 2, 256},
                                              BatcherOptions{8, 2, 256});
    env->vqa = VqaService::open(env->vqa_dir, &env->clip->engine_mutex());
    env->cap = CaptionService::open(env->cap_dir + "/model.safetensors", &env->clip->engine_mutex());
    ServerModels m;
    m.clip = env->clip.get();
    m.clip_name = "tiny";
    m.vqa = env->vqa.get();
    m.caption = env->cap.get();
    ServerOptions so;
    so.limits.max_body_bytes = 1 << 20;
    so.limits.max_image_pixels = 200 * 200;
    so.limits.max_text_bytes = 300;
    so.limits.max_beam = 4;
    env->server = std::make_unique<test::InProcessServer>(m, so);
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
  }

  httplib::Client client() { return env->server->client(); }
  json post(const std::string& path, const json& body, int want_status = 200) {
    return env->server->post(path, body, want_status);
  }
  void expect_error(const std::string& path, const json& body, int status, const std::string& code,
                    const std::string& needle) {
    auto c = client();
    test::expect_api_error(c.Post(path.c_str(), body.dump(), "application/json"), status, code, needle);
  }
};

// The server's /v1/vqa JSON equals answer_question on the same model file.
void expect_same_answer(const json& got, const VqaAnswer& want, const std::string& what) {
  EXPECT_EQ(got["answer"], want.answer) << what;
  EXPECT_NEAR(got["probability"].get<double>(), want.probability, 1e-6) << what;
  ASSERT_EQ(got["top"].size(), want.top.size()) << what;
  for (size_t i = 0; i < want.top.size(); ++i) {
    EXPECT_EQ(got["top"][i]["answer"], want.top[i].first) << what << " top " << i;
    EXPECT_NEAR(got["top"][i]["probability"].get<double>(), want.top[i].second, 1e-6) << what << " top " << i;
  }
}

}  // namespace

TEST_F(ServeVqaCaption, VqaEqualsLibraryAndCli) {
  ASSERT_GE(env->questions.size(), 3u);
  for (const Question& q : env->questions) {
    json got = post("/v1/vqa", {{"image", b64_file(q.image)}, {"question", q.question}, {"top_k", 3}});
    VqaAnswer want = answer_question(*env->vqa_ref, decode_image_file(q.image), q.question, nullptr, 3);
    expect_same_answer(got, want, q.question);
    EXPECT_EQ(got["question"], q.question);
    EXPECT_EQ(got["model"], "vqa");
  }
  // Default top_k is 5 (or every answer when fewer).
  const Question& q = env->questions[0];
  json d = post("/v1/vqa", {{"image", b64_file(q.image)}, {"question", q.question}});
  EXPECT_EQ(d["top"].size(), std::min<size_t>(5, env->vqa_ref->cfg.answers.size()));
  // The CLI answers the same.
  Cli r = run_cli("vqa --model " + env->vqa_dir + " --image " + q.image + " --question '" + q.question +
                  "' --json --top-k 3");
  ASSERT_EQ(r.code, 0) << r.err;
  json cli = json::parse(r.out);
  json srv = post("/v1/vqa", {{"image", b64_file(q.image)}, {"question", q.question}, {"top_k", 3}});
  EXPECT_EQ(srv["answer"], cli["answer"]);
  EXPECT_NEAR(srv["probability"].get<double>(), cli["probability"].get<double>(), 1e-6);
  ASSERT_EQ(srv["top"].size(), cli["top"].size());
  for (size_t i = 0; i < cli["top"].size(); ++i) {
    EXPECT_EQ(srv["top"][i]["answer"], cli["top"][i]["answer"]) << i;
    EXPECT_NEAR(srv["top"][i]["probability"].get<double>(), cli["top"][i]["probability"].get<double>(), 1e-6) << i;
  }
}

TEST_F(ServeVqaCaption, MultipartUploadsAnswerTheSame) {
  const Question& q = env->questions[1];
  auto c = client();
  httplib::MultipartFormDataItems items = {{"image", slurp(q.image), "scene.png", "image/png"},
                                           {"question", q.question, "", ""},
                                           {"top_k", "2", "", ""}};
  auto r = c.Post("/v1/vqa", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  expect_same_answer(json::parse(r->body),
                     answer_question(*env->vqa_ref, decode_image_file(q.image), q.question, nullptr, 2), "multipart");

  httplib::MultipartFormDataItems cap = {{"image", slurp(env->cap_images[1]), "scene.png", "image/png"},
                                         {"beam", "2", "", ""}};
  r = c.Post("/v1/caption", cap);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  GenerateOptions g;
  g.beam = 2;
  ImageCaption want = caption_images(*env->cap_ref, {decode_image_file(env->cap_images[1])}, g)[0];
  EXPECT_EQ(json::parse(r->body)["caption"], want.text);
}

TEST_F(ServeVqaCaption, CaptionEqualsLibraryAndCli) {
  struct Opt {
    int beam;
    int64_t max_tokens;
  };
  for (Opt o : {Opt{1, 0}, Opt{3, 0}, Opt{2, 4}}) {
    for (const std::string& img : env->cap_images) {
      json body = {{"image", b64_file(img)}, {"beam", o.beam}};
      if (o.max_tokens) body["max_tokens"] = o.max_tokens;
      json got = post("/v1/caption", body);
      GenerateOptions g;
      g.beam = o.beam;
      g.max_tokens = o.max_tokens;
      ImageCaption want = caption_images(*env->cap_ref, {decode_image_file(img)}, g)[0];
      const std::string what = img + " beam " + std::to_string(o.beam);
      EXPECT_EQ(got["caption"], want.text) << what;
      EXPECT_NEAR(got["log_prob"].get<double>(), want.gen.log_prob, 1e-4) << what;
      EXPECT_NEAR(got["score"].get<double>(), want.gen.score, 1e-4) << what;
      EXPECT_EQ(got["finished"], want.gen.finished) << what;
      EXPECT_EQ(got["tokens"], want.gen.tokens.size()) << what;
      EXPECT_EQ(got["beam"], o.beam);
      EXPECT_EQ(got["max_tokens"], o.max_tokens ? o.max_tokens : env->cap->max_len());
      if (o.max_tokens) {
        EXPECT_LE(int64_t(want.gen.tokens.size()) + (want.gen.finished ? 1 : 0), o.max_tokens);
      }
    }
  }
  // The CLI captions the same files the same way.
  Cli r = run_cli("caption --model " + env->cap_dir + " --beam 3 --json " + env->cap_images[0] + " " +
                  env->cap_images[2]);
  ASSERT_EQ(r.code, 0) << r.err;
  json cli = json::parse(r.out);
  ASSERT_EQ(cli.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    json srv = post("/v1/caption", {{"image", b64_file(env->cap_images[size_t(2 * i)])}, {"beam", 3}});
    EXPECT_EQ(srv["caption"], cli[i]["caption"]) << i;
    EXPECT_NEAR(srv["log_prob"].get<double>(), cli[i]["log_prob"].get<double>(), 1e-4) << i;
  }
  r = run_cli("caption --model " + env->cap_dir + " --max-tokens 3 --json " + env->cap_images[3]);
  ASSERT_EQ(r.code, 0) << r.err;
  json srv = post("/v1/caption", {{"image", b64_file(env->cap_images[3])}, {"max_tokens", 3}});
  EXPECT_EQ(srv["caption"], json::parse(r.out)[0]["caption"]);
}

TEST_F(ServeVqaCaption, BadRequestsGetClearErrors) {
  const Question& q = env->questions[0];
  const std::string img = b64_file(q.image);
  // Missing fields.
  expect_error("/v1/vqa", {{"image", img}}, 400, "missing_field", "'question' is required");
  expect_error("/v1/vqa", {{"question", q.question}}, 400, "missing_field", "'image' is required");
  expect_error("/v1/caption", {{"beam", 2}}, 400, "missing_field", "'image' is required");
  // Questions the model cannot take: the unknown word is named.
  expect_error("/v1/vqa", {{"image", img}, {"question", ""}}, 400, "empty_question", "empty");
  expect_error("/v1/vqa", {{"image", img}, {"question", "  "}}, 400, "empty_question", "empty");
  expect_error("/v1/vqa", {{"image", img}, {"question", " ?? "}}, 400, "empty_question", "no words");
  expect_error("/v1/vqa", {{"image", img}, {"question", "What is the colour of the zebra?"}}, 400, "unknown_word",
               "unknown word 'colour'");
  std::string many;
  for (int i = 0; i < 40; ++i) many += "the ";
  expect_error("/v1/vqa", {{"image", img}, {"question", many}}, 400, "question_too_long", "40 words");
  expect_error("/v1/vqa", {{"image", img}, {"question", std::string(400, 'a')}}, 400, "text_too_long",
               "question: 400 bytes");
  expect_error("/v1/vqa", {{"image", img}, {"question", 7}}, 400, "bad_request", "'question' must be a string");
  // Images that do not decode, or are too big.
  const std::string junk = "this is not an image";
  const std::string truncated = slurp(q.image).substr(0, 60);
  for (const char* route : {"/v1/vqa", "/v1/caption"}) {
    json base = {{"question", q.question}};
    auto with = [&](const json& image) {
      json b = base;
      b["image"] = image;
      return b;
    };
    expect_error(route, with(encode_base64(reinterpret_cast<const uint8_t*>(junk.data()), junk.size())), 415,
                 "unsupported_media_type", "not a PNG or JPEG");
    expect_error(route, with(encode_base64(reinterpret_cast<const uint8_t*>(truncated.data()), truncated.size())), 400,
                 "bad_image", "image");
    expect_error(route, with("%%%"), 400, "bad_base64", "image");
    expect_error(route, with(b64_png(Image(300, 200, 3))), 413, "image_too_large", "image");
    expect_error(route, {{"images", {img, img}}, {"question", q.question}}, 400, "bad_request", "exactly one image");
  }
  // Values out of range.
  const int64_t K = env->vqa->num_answers();
  expect_error("/v1/vqa", {{"image", img}, {"question", q.question}, {"top_k", K + 1}}, 400, "bad_request",
               "'top_k' = " + std::to_string(K + 1) + " is outside [1, " + std::to_string(K) + "]");
  expect_error("/v1/vqa", {{"image", img}, {"question", q.question}, {"top_k", 0}}, 400, "bad_request", "'top_k' = 0");
  expect_error("/v1/caption", {{"image", img}, {"beam", 5}}, 400, "bad_request", "'beam' = 5 is outside [1, 4]");
  expect_error("/v1/caption", {{"image", img}, {"beam", 0}}, 400, "bad_request", "'beam' = 0");
  expect_error("/v1/caption", {{"image", img}, {"beam", "wide"}}, 400, "bad_request", "'beam' must be an integer");
  const int64_t L = env->cap->max_len();
  expect_error("/v1/caption", {{"image", img}, {"max_tokens", L + 1}}, 400, "bad_request",
               "'max_tokens' = " + std::to_string(L + 1) + " is outside [1, " + std::to_string(L) + "]");
  expect_error("/v1/caption", {{"image", img}, {"length_penalty", -1}}, 400, "bad_request", "'length_penalty' = -1");
  // Nothing of this reached a model: the metrics count them as 4xx of their routes.
  auto c = client();
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("mmkit_requests_total{route=\"/v1/vqa\",status=\"400\"}"), std::string::npos);
  EXPECT_NE(m->body.find("mmkit_requests_total{route=\"/v1/caption\",status=\"413\"}"), std::string::npos);
}

TEST_F(ServeVqaCaption, HealthzAndMetricsListTheModels) {
  auto c = client();
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  json j = json::parse(h->body);
  EXPECT_EQ(j["vqa"]["model"], "vqa");
  EXPECT_EQ(j["vqa"]["answers"], env->vqa_ref->cfg.answers.size());
  EXPECT_EQ(j["vqa"]["image_size"], env->vqa_ref->cfg.image_size);
  EXPECT_EQ(j["caption"]["model"], "cap/model.safetensors");
  EXPECT_EQ(j["caption"]["max_tokens"], env->cap_ref->model.cfg.decoder.max_len);
  EXPECT_EQ(j["limits"]["max_beam"], 4);
  EXPECT_TRUE(j["index"].is_null());
  post("/v1/vqa", {{"image", b64_file(env->questions[0].image)}, {"question", env->questions[0].question}});
  post("/v1/caption", {{"image", b64_file(env->cap_images[0])}});
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  for (const char* line : {"mmkit_model_loaded{model=\"vqa\"} 1", "mmkit_model_loaded{model=\"caption\"} 1",
                           "mmkit_model_loaded{model=\"index\"} 0", "mmkit_model_loaded{model=\"classify\"} 0",
                           "mmkit_requests_total{route=\"/v1/vqa\",status=\"200\"}",
                           "mmkit_requests_total{route=\"/v1/caption\",status=\"200\"}",
                           "mmkit_request_seconds_count{route=\"/v1/caption\"}"})
    EXPECT_NE(m->body.find(line), std::string::npos) << line;
  json mj = json::parse(c.Get("/v1/metrics")->body);
  EXPECT_GE(mj["/v1/vqa"]["status"]["200"].get<int64_t>(), 1);
  EXPECT_GE(mj["/v1/caption"]["status"]["200"].get<int64_t>(), 1);
}

// VQA, caption and embedding requests from many threads at once: each gets
// the result it would get alone.
TEST_F(ServeVqaCaption, ConcurrentRequestsEachGetTheirOwnResult) {
  std::vector<VqaAnswer> answers;
  for (auto& q : env->questions)
    answers.push_back(answer_question(*env->vqa_ref, decode_image_file(q.image), q.question, nullptr, 3));
  std::vector<std::string> captions;
  for (auto& f : env->cap_images) captions.push_back(caption_images(*env->cap_ref, {decode_image_file(f)}, {})[0].text);
  std::vector<std::string> qb64, cb64;
  for (auto& q : env->questions) qb64.push_back(b64_file(q.image));
  for (auto& f : env->cap_images) cb64.push_back(b64_file(f));
  std::atomic<int> bad{0}, done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      httplib::Client c = env->server->client();
      for (int rep = 0; rep < 4; ++rep) {
        const size_t i = size_t(t + rep);
        if ((t + rep) % 3 == 0) {
          const size_t k = i % env->questions.size();
          auto r = c.Post("/v1/vqa", json{{"image", qb64[k]}, {"question", env->questions[k].question}, {"top_k", 3}}.dump(),
                          "application/json");
          if (!r || r->status != 200) {
            ++bad;
            continue;
          }
          json j = json::parse(r->body);
          if (j["answer"] != answers[k].answer || std::fabs(j["probability"].get<double>() - answers[k].probability) > 1e-6)
            ++bad;
        } else if ((t + rep) % 3 == 1) {
          const size_t k = i % env->cap_images.size();
          auto r = c.Post("/v1/caption", json{{"image", cb64[k]}}.dump(), "application/json");
          if (!r || r->status != 200 || json::parse(r->body)["caption"] != captions[k]) ++bad;
        } else {
          auto r = c.Post("/v1/embeddings", json{{"image", cb64[i % cb64.size()]}}.dump(), "application/json");
          if (!r || r->status != 200) ++bad;
        }
        ++done;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(done.load(), 32);
}

// The CLI's flags: `mmkit serve --vqa DIR --caption FILE` loads the same files
// (answers equal the library's), and a bad path fails before listening.
TEST_F(ServeVqaCaption, CliServeLoadsVqaAndCaptionModels) {
  Cli bad = run_cli("serve --model " + env->clip_path + " --vqa " + env->dir + "/nope --port 0");
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_NE(bad.err.find("nope"), std::string::npos) << bad.err;
  bad = run_cli("serve --model " + env->clip_path + " --caption " + env->clip_path + " --port 0");
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_NE(bad.err.find("not an mmkit captioner"), std::string::npos) << bad.err;

  const std::string port_file = env->dir + "/port";
  // Everything the child needs is prepared before fork (this process has threads).
  const std::string bin = std::string(MMKIT_BINARY_DIR) + "/mmkit", cap_file = env->cap_dir + "/model.safetensors",
                    log = env->dir + "/serve.err";
  const char* argv[] = {bin.c_str(), "serve", "--model", env->clip_path.c_str(), "--vqa", env->vqa_dir.c_str(),
                        "--caption", cap_file.c_str(), "--port", "0", "--port-file", port_file.c_str(), nullptr};
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  struct Reap {  // stops the server on every exit from this test, failed assertions included
    pid_t pid;
    ~Reap() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reap{pid};
  int port = 0;
  for (int i = 0; i < 600 && !port; ++i) {  // up to 30 s under a loaded machine; not a timing assertion
    std::ifstream f(port_file);
    if (!(f >> port)) port = 0;
    if (!port) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << slurp(env->dir + "/serve.err");
  httplib::Client c = test::loopback_client(port);
  const Question& q = env->questions[2];
  auto r = c.Post("/v1/vqa", json{{"image", b64_file(q.image)}, {"question", q.question}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  expect_same_answer(json::parse(r->body), answer_question(*env->vqa_ref, decode_image_file(q.image), q.question),
                     "mmkit serve");
  r = c.Post("/v1/caption", json{{"image", b64_file(env->cap_images[0])}, {"beam", 2}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  GenerateOptions g;
  g.beam = 2;
  EXPECT_EQ(json::parse(r->body)["caption"], caption_images(*env->cap_ref, {decode_image_file(env->cap_images[0])}, g)[0].text);
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["vqa"]["model"], "vqa");
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  reap.pid = 0;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}
