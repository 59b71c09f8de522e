// CLIP contrastive training: the loss, its gradients and one AdamW step
// against PyTorch (tests/fixtures/clip_train.safetensors from
// tools/fixtures/gen_clip_train_fixture.py); training runs on Fashion-MNIST
// captions and on a caption file; SIGKILL + resume reproducing the loss
// curve; frozen towers; Hugging Face layout in, same layout out; retrieval
// metrics on hand-computed cases; caption-file errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "mmkit/autograd/functions.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/data/image_text_dataset.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/eval/retrieval.h"
#include "mmkit/image/image.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/models/clip_export.h"
#include "mmkit/serve/clip_service.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/train/clip_trainer.h"
#include "test_util.h"

using namespace mmkit;

namespace {


std::string mmkit_bin() { return std::string(MMKIT_BINARY_DIR) + "/mmkit"; }

int run(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

ClipConfig fixture_config() {
  return ClipConfig::from_json(R"({"embed_dim": 16, "image_resolution": 16, "vision_layers": 2,
      "vision_width": 32, "vision_patch_size": 8, "vision_heads": 2, "context_length": 8,
      "vocab_size": 50, "transformer_width": 32, "transformer_heads": 2, "transformer_layers": 2})");
}

// A tiny CLIP with its own learned tokenizer, for the layout and CLI cases.
train::ClipTrainOptions tiny_fmnist(const std::string& out) {
  train::ClipTrainOptions o;
  o.out_dir = out;
  o.model.embed_dim = 32;
  o.model.vision_width = 32;
  o.model.vision_layers = 1;
  o.model.vision_heads = 2;
  o.model.vision_patch_size = 7;
  o.model.context_length = 16;
  o.model.transformer_width = 32;
  o.model.transformer_layers = 1;
  o.model.transformer_heads = 2;
  o.bpe_merges = 100;
  o.epochs = 2;
  o.batch = 64;
  o.limit_train = 640;  // 10 steps per epoch
  o.limit_test = 200;
  o.checkpoint_every = 3;
  o.threads = 2;
  return o;
}

}  // namespace

TEST(ClipTrain, ContrastiveLossAndGradientsMatchTorch) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("clip_train.safetensors"));
  for (int k = 0; k < 2; ++k) {
    auto get = [&](const char* n) { return io::read_tensor_f32(f, "loss." + std::to_string(k) + "." + n); };
    Arena arena;
    Graph g(arena);
    Var img = g.leaf(get("img")), txt = g.leaf(get("txt")), t = g.leaf(get("t"));
    Var loss = ag::clip_contrastive_loss(g, img, txt, t);
    g.backward(loss);
    const std::string c = "case " + std::to_string(k);
    EXPECT_TRUE(test::close(c + " loss", g.value(loss), get("loss"), 1e-6f, 1e-4f));
    EXPECT_TRUE(test::close(c + " d img", g.grad(img), get("dimg"), 1e-6f, 1e-4f));
    EXPECT_TRUE(test::close(c + " d txt", g.grad(txt), get("dtxt"), 1e-6f, 1e-4f));
    EXPECT_TRUE(test::close(c + " d logit_scale", g.grad(t), get("dt"), 1e-6f, 1e-4f));
  }
}

TEST(ClipTrain, OneAdamWStepMatchesTorch) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("clip_train.safetensors"));
  Clip clip;
  clip.init(fixture_config(), 0);
  for (Parameter* p : clip.parameters()) {
    Tensor v = io::read_tensor_f32(f, "init." + p->name);
    ASSERT_EQ(v.numel(), p->value.numel()) << p->name;
    std::memcpy(p->value.raw(), v.raw(), v.nbytes());
  }
  Tensor pixels = io::read_tensor_f32(f, "input.pixels");
  Tensor ids = io::read_tensor_i32(f, "input.ids");
  // Gradients of the contrastive loss through both towers (before clipping).
  {
    Arena arena;
    Graph g(arena);
    for (Parameter* p : clip.parameters()) p->grad = Tensor::zeros(p->value.shape());
    Var img = clip_encode_image(g, clip, g.constant(pixels));
    Var txt = clip_encode_text(g, clip, ids);
    Var loss = ag::clip_contrastive_loss(g, img, txt, g.param(clip.logit_scale));
    EXPECT_NEAR(g.data(loss)[0], io::read_tensor_f32(f, "output.loss").f32()[0], 1e-5);
    g.backward(loss);
    double sq = 0;
    for (Parameter* p : clip.parameters()) {
      Tensor want = io::read_tensor_f32(f, "grad." + p->name);
      EXPECT_TRUE(test::close("d " + p->name, p->grad, want, 1e-4f * test::max_abs(want) + 1e-7f, 1e-3f));
      for (int64_t i = 0; i < p->grad.numel(); ++i) sq += double(p->grad.f32()[i]) * p->grad.f32()[i];
    }
    EXPECT_NEAR(std::sqrt(sq), io::read_tensor_f32(f, "output.grad_norm").f32()[0], 1e-3);
  }
  // The step itself, through the trainer's own step function.
  AdamWConfig ac;
  ac.lr = 1e-3f;
  ac.weight_decay = 0.1f;
  AdamW opt(clip.parameters(), ac);
  Arena arena;
  Graph g(arena);
  const float loss = train::clip_train_step(g, clip, opt, pixels, ids, 1e-3f, 1.0f);
  EXPECT_NEAR(loss, io::read_tensor_f32(f, "output.loss").f32()[0], 1e-5);
  const float norm = io::read_tensor_f32(f, "output.grad_norm").f32()[0];
  for (Parameter* p : clip.parameters()) {
    Tensor want = io::read_tensor_f32(f, "after." + p->name);
    Tensor grad = io::read_tensor_f32(f, "grad." + p->name);
    // Adam's first step moves a weight by lr * g / (|g| + eps): ~lr for any
    // gradient well above eps (1e-8), so weights agree to a small fraction
    // of the step (2e-6 = 0.2%). Where the clipped gradient is within 100 eps
    // of zero, float32 round-off in g changes the step itself; there only
    // the bound |step| <= lr is checked.
    int64_t worst = -1;
    double worst_diff = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      double diff = std::fabs(double(p->value.f32()[i]) - want.f32()[i]);
      bool well_conditioned = std::fabs(grad.f32()[i]) / std::max(norm, 1.f) > 1e-6f;
      double tol = well_conditioned ? 2e-6 + 1e-5 * std::fabs(want.f32()[i]) : 2.0 * ac.lr;
      if (diff > tol && diff > worst_diff) {
        worst = i;
        worst_diff = diff;
      }
    }
    EXPECT_EQ(worst, -1) << p->name << ": element " << worst << " got " << p->value.f32()[worst] << ", expected "
                         << want.f32()[worst];
  }
}

TEST(ClipTrain, TemperatureIsClampedAtLn100) {
  Clip clip;
  clip.init(fixture_config(), 1);
  clip.logit_scale.value.f32()[0] = 4.7f;  // above ln 100 = 4.605
  AdamWConfig ac;
  ac.lr = 1e-3f;
  AdamW opt(clip.parameters(), ac);
  Arena arena;
  Graph g(arena);
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("clip_train.safetensors"));
  train::clip_train_step(g, clip, opt, io::read_tensor_f32(f, "input.pixels"), io::read_tensor_i32(f, "input.ids"),
                         1e-3f, 1.0f);
  EXPECT_FLOAT_EQ(clip.logit_scale.value.f32()[0], std::log(100.f));
}

TEST(ClipTrain, RetrievalRecallOnHandComputedCase) {
  // 3 images, 4 texts (E = 2). Image 0 = (1,0), image 1 = (0,1), image 2 = (0.6,0.8).
  // Texts: t0 (0.8,0.6) of image 0, t1 (0,1) of image 1, t2 (1,0) of image 2, t3 (0.6,0.8) of image 0.
  Tensor img = Tensor::empty(Shape{3, 2}), txt = Tensor::empty(Shape{4, 2});
  float iv[] = {1, 0, 0, 1, 0.6f, 0.8f}, tv[] = {0.8f, 0.6f, 0, 1, 1, 0, 0.6f, 0.8f};
  std::memcpy(img.raw(), iv, sizeof iv);
  std::memcpy(txt.raw(), tv, sizeof tv);
  RetrievalResult r = retrieval_recall(img, txt, {0, 1, 2}, {0, 1, 2, 0}, {1, 2});
  // Cosines (rows images, columns t0..t3):
  //   i0: 0.8  0    1.0  0.6    own texts t0, t3: best 0.8, beaten by t2    -> rank 1: miss@1, hit@2
  //   i1: 0.6  1.0  0    0.8    own text t1: 1.0, best                      -> rank 0: hit
  //   i2: 0.96 0.8  0.6  1.0    own text t2: 0.6, beaten by t0, t1, t3      -> rank 3: miss@1, miss@2
  // image->text recall@1 = 1/3, recall@2 = 2/3.
  EXPECT_NEAR(r.image_to_text[0], 1.0 / 3, 1e-9);
  EXPECT_NEAR(r.image_to_text[1], 2.0 / 3, 1e-9);
  // Columns: t0 -> i0 0.8 beaten by i2 0.96 (rank 1); t1 -> i1 best (rank 0);
  // t2 -> i2 0.6 beaten by i0 1.0 (rank 1); t3 -> i0 0.6 beaten by i1, i2 (rank 2).
  // text->image recall@1 = 1/4, recall@2 = 3/4.
  EXPECT_NEAR(r.text_to_image[0], 1.0 / 4, 1e-9);
  EXPECT_NEAR(r.text_to_image[1], 3.0 / 4, 1e-9);
}

TEST(ClipTrain, CaptionFilesParseAndReportBadLines) {
  std::string d = test::make_temp_dir("files");
  std::ofstream(d + "/a.jsonl") << "{\"image\": \"x.png\", \"caption\": \"a cat\"}\n\n"
                                << "{\"image\": \"/abs/y.png\", \"captions\": [\"one\", \"two\"]}\n";
  auto p = data::read_image_text_file(d + "/a.jsonl");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].image, d + "/x.png");
  EXPECT_EQ(p[1].image, "/abs/y.png");
  EXPECT_EQ(p[1].image_id, p[2].image_id);
  EXPECT_NE(p[0].image_id, p[1].image_id);
  std::ofstream(d + "/b.csv") << "id,caption,image\n1,\"a \"\"quoted\"\", multi\nline\",img1.png\n2,plain,img2.png\n";
  auto c = data::read_image_text_file(d + "/b.csv");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].caption, "a \"quoted\", multi\nline");
  EXPECT_EQ(c[1].image, d + "/img2.png");
  std::ofstream(d + "/bad1.jsonl") << "{\"image\": \"x.png\", \"caption\": \"ok\"}\n{\"image\": \"x.png\"}\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/bad1.jsonl"); }).find("bad1.jsonl:2: missing field \"caption\""),
            std::string::npos);
  std::ofstream(d + "/bad2.jsonl") << "not json\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/bad2.jsonl"); }).find("bad2.jsonl:1: not a JSON object"),
            std::string::npos);
  std::ofstream(d + "/bad3.jsonl") << "{\"image\": \"x.png\", \"caption\": \"\xff\xfe\"}\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/bad3.jsonl"); }).find("not valid UTF-8"),
            std::string::npos);
  std::ofstream(d + "/bad4.csv") << "image,text\nx.png,hi\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/bad4.csv"); }).find("columns 'image' and 'caption'"),
            std::string::npos);
  std::ofstream(d + "/bad5.csv") << "image,caption\nx.png,\"open\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/bad5.csv"); }).find("bad5.csv:2: unterminated"),
            std::string::npos);
  std::ofstream(d + "/empty.jsonl") << "\n";
  EXPECT_NE(test::error_of([&] { data::read_image_text_file(d + "/empty.jsonl"); }).find("no image-caption pairs"),
            std::string::npos);
}

TEST(ClipTrain, HeldOutTemplatesNeverOccurInTraining) {
  for (const auto& h : data::fmnist_heldout_templates())
    for (const auto& t : data::fmnist_train_templates()) EXPECT_NE(h, t);
  // Captions only ever come from training templates.
  for (uint64_t s = 0; s < 500; ++s) {
    std::string c = data::fmnist_caption(int(s % 10), s);
    bool from_train = false;
    for (const auto& t : data::fmnist_train_templates())
      for (const auto& n : data::fmnist_synonyms(int(s % 10))) from_train |= c == data::fill_template(t, n);
    EXPECT_TRUE(from_train) << c;
  }
}

TEST(ClipTrain, LearnsFashionMnistZeroShot) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("learn");
  auto o = tiny_fmnist(dir);
  o.limit_train = 3200;
  o.limit_test = 500;
  o.epochs = 3;
  auto h = train::train_clip(o);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_LT(h.back().train_loss, h.front().train_loss);
  // 150 steps of a tiny model on held-out prompt wordings: well above chance (10%).
  EXPECT_GT(h.back().zero_shot_acc, 0.3);
  for (auto f : {"model.safetensors", "checkpoint.safetensors", "training_curves.png", "history.json"})
    EXPECT_TRUE(test::file_exists(dir + "/" + f)) << f;
  // The saved model is self-contained (tokenizer inside) and `mmkit eval zero-shot` reproduces the
  // trainer's own evaluation.
  std::string out = dir + "/zs.json";
  ASSERT_EQ(run(mmkit_bin() + " eval zero-shot --model " + dir + "/model.safetensors --limit 500 --json --threads 2 > " +
                out + " 2>/dev/null"),
            0);
  nlohmann::json j = nlohmann::json::parse(read_file(out));
  EXPECT_NEAR(j["top1"].get<double>(), h.back().zero_shot_acc, 1e-9);
  EXPECT_GE(j["top5"].get<double>(), j["top1"].get<double>());
  EXPECT_TRUE(test::file_exists(dir + "/confusion_matrix.png"));
  ASSERT_EQ(run(mmkit_bin() + " eval retrieval --model " + dir + "/model.safetensors --limit 200 --json > " + out +
                " 2>/dev/null"),
            0);
  j = nlohmann::json::parse(read_file(out));
  EXPECT_EQ(j["images"].get<int>(), 200);
  EXPECT_GE(j["class_image_to_text_recall"][0].get<double>(), j["image_to_text_recall"][0].get<double>());
}

// `--loss sigmoid` (SigLIP): a few steps from open_clip's initialisation
// (scale 10, bias -10) lower the loss; the model file carries the trained
// `logit_bias`, loads in `mmkit zero-shot` / `mmkit embed` / `eval zero-shot`
// and the server, and zero-shot reports sigmoid(exp(t) cos + bias) per label;
// --resume keeps the loss it was started with.
TEST(ClipTrain, SigmoidLossTrainsAndItsModelLoads) {
  REQUIRE_FMNIST();
  const std::string dir = test::make_temp_dir("sigmoid");
  const std::string args =
      " --loss sigmoid --embed-dim 32 --vision-width 32 --vision-layers 1 --vision-heads 2 --patch 7 --context 16"
      " --text-width 32 --text-layers 1 --text-heads 2 --bpe-merges 100 --batch 64 --limit-train 1280"
      " --limit-test 200 --epochs 1 --checkpoint-every 0 --threads 2 --lr 2e-3 --warmup-steps 2";
  ASSERT_EQ(run(mmkit_bin() + " train clip --out " + dir + args + " > " + dir + "/log.txt 2>&1"), 0)
      << read_file(dir + "/log.txt");
  nlohmann::json h = nlohmann::json::parse(read_file(dir + "/history.json"));
  ASSERT_EQ(h.size(), 1u);
  const auto losses = h[0]["losses"].get<std::vector<double>>();
  ASSERT_EQ(losses.size(), 20u);
  // The first step's loss is near the initialisation's: the 63 negatives of a row at logit ~-10
  // cost ~63 e^-10 and the positive ~10 + log1p(e^-10). Then the loss falls.
  EXPECT_GT(losses.front(), 5.0);
  EXPECT_LT(losses.front(), 20.0);
  const double first = (losses[0] + losses[1] + losses[2]) / 3, last = (losses[17] + losses[18] + losses[19]) / 3;
  EXPECT_LT(last, 0.8 * first) << "first steps " << first << ", last steps " << last;
  ASSERT_TRUE(h[0].contains("logit_bias"));
  EXPECT_NE(read_file(dir + "/log.txt").find(", bias "), std::string::npos);

  // The model file: logit_bias [] beside logit_scale, trained away from -10.
  io::SafetensorsFile f = io::SafetensorsFile::open(dir + "/model.safetensors");
  const io::TensorView* tb = f.find("logit_bias");
  ASSERT_TRUE(tb);
  EXPECT_TRUE(tb->shape.empty());
  const float bias = io::read_tensor_f32(f, "logit_bias").f32()[0];
  const float scale = std::exp(io::read_tensor_f32(f, "logit_scale").f32()[0]);
  EXPECT_NE(bias, -10.f);
  EXPECT_NEAR(h[0]["logit_bias"].get<double>(), bias, 1e-6);
  auto m = load_clip(dir + "/model.safetensors");
  ASSERT_TRUE(m->has_logit_bias());
  EXPECT_EQ(m->logit_bias.value.f32()[0], bias);
  // In the Hugging Face layout too (what --init from a Hugging Face folder saves back).
  const std::string hf = test::make_temp_dir("sigmoid_hf") + "/model.safetensors";
  save_clip_model(hf, *m, {}, "hf_clip");
  ASSERT_TRUE(io::SafetensorsFile::open(hf).find("logit_bias"));
  auto mh = load_clip(hf);
  ASSERT_TRUE(mh->has_logit_bias());
  EXPECT_EQ(mh->logit_bias.value.f32()[0], bias);
  // Stopped after 8 of the 20 steps and resumed: the same model file, bias included.
  const std::string cut = test::make_temp_dir("sigmoid_resume");
  ASSERT_EQ(run(mmkit_bin() + " train clip --out " + cut + args + " --max-steps 8 > /dev/null 2>&1"), 0);
  ASSERT_EQ(run(mmkit_bin() + " train clip --out " + cut + " --resume --threads 2 > /dev/null 2>&1"), 0);
  EXPECT_EQ(read_file(cut + "/model.safetensors"), read_file(dir + "/model.safetensors"));

  // Zero-shot through the inference engine: per-label sigmoids of the scaled cosine plus the bias.
  Image img(28, 28, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 37) % 251);
  const std::string png = dir + "/x.png";
  write_png(png, img);
  ClipRunner r = ClipRunner::open(dir + "/model.safetensors");
  const std::vector<std::string> labels = {"shirt", "sneaker", "bag"};
  ZeroShotResult z = r.zero_shot({img}, labels, {"a photo of a {}."});
  Tensor ei = r.embed_images({img}, true);
  Tensor et = r.embed_texts({"a photo of a shirt.", "a photo of a sneaker.", "a photo of a bag."}, true);
  const int64_t E = r.embed_dim();
  for (int64_t l = 0; l < 3; ++l) {
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += double(ei.f32()[e]) * et.f32()[l * E + e];
    const double want = 1.0 / (1.0 + std::exp(-(scale * dot + bias)));
    EXPECT_NEAR(z.probs[0][size_t(l)], want, 1e-5 + 1e-4 * want) << labels[size_t(l)];
  }
  // The server's zero-shot agrees.
  {
    serve::ClipService svc(ClipRunner::open(dir + "/model.safetensors"), serve::BatcherOptions{}, serve::BatcherOptions{},
                           2);
    serve::ZeroShotProbs sz = svc.zero_shot(img, labels, {"a photo of a {}."});
    ASSERT_EQ(sz.probs.size(), 3u);
    for (size_t l = 0; l < 3; ++l) EXPECT_NEAR(sz.probs[l], z.probs[0][l], 1e-5) << labels[l];
  }
  // The CLI commands load it.
  const std::string out = dir + "/out.json";
  ASSERT_EQ(run(mmkit_bin() + " zero-shot --model " + dir + " --labels shirt,sneaker,bag --json " + png + " > " + out +
                " 2>&1"),
            0)
      << read_file(out);
  nlohmann::json zj = nlohmann::json::parse(read_file(out));
  EXPECT_NEAR(zj[0]["probs"][0].get<double>(), z.probs[0][0], 1e-6);
  ASSERT_EQ(run(mmkit_bin() + " embed --model " + dir + " --text shoe --image " + png + " --json > " + out + " 2>&1"), 0)
      << read_file(out);
  ASSERT_EQ(run(mmkit_bin() + " eval zero-shot --model " + dir + " --limit 200 --json --threads 2 > " + out +
                " 2>/dev/null"),
            0);
  EXPECT_NEAR(nlohmann::json::parse(read_file(out))["top1"].get<double>(), h[0]["zero_shot_acc"].get<double>(), 1e-9);

  // --resume restores --loss; another loss is refused.
  EXPECT_NE(run(mmkit_bin() + " train clip --out " + dir + " --resume --loss contrastive > " + out + " 2>&1"), 0);
  EXPECT_NE(read_file(out).find("--loss"), std::string::npos) << read_file(out);
}

TEST(ClipTrain, SigkillThenResumeReproducesLossCurve) {
  REQUIRE_FMNIST();
  const std::string args =
      " --embed-dim 32 --vision-width 32 --vision-layers 1 --vision-heads 2 --patch 7 --context 16"
      " --text-width 32 --text-layers 1 --text-heads 2 --bpe-merges 100 --batch 64 --limit-train 1280"
      " --limit-test 100 --epochs 2 --checkpoint-every 3 --threads 2";
  std::string a = test::make_temp_dir("full"), b = test::make_temp_dir("kill");
  ASSERT_EQ(run(mmkit_bin() + " train clip --out " + a + args + " >/dev/null 2>&1"), 0);
  std::string cmd = mmkit_bin() + " train clip --out " + b + args;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  auto t0 = std::chrono::steady_clock::now();
  while (!test::file_exists(b + "/checkpoint.safetensors") &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(test::file_exists(b + "/checkpoint.safetensors")) << "no checkpoint within 120 s";
  io::SafetensorsFile ck = io::SafetensorsFile::open(b + "/checkpoint.safetensors");  // whole, not torn
  ASSERT_TRUE(ck.metadata().count("train_state"));
  // Killed mid-run: the checkpoint is from before the last of the 40 steps.
  EXPECT_LT(nlohmann::json::parse(ck.metadata().at("train_state"))["step"].get<int>(), 40);
  ASSERT_EQ(run(cmd + " --resume >/dev/null 2>&1"), 0);
  nlohmann::json ha = nlohmann::json::parse(read_file(a + "/history.json"));
  nlohmann::json hb = nlohmann::json::parse(read_file(b + "/history.json"));
  ASSERT_EQ(ha.size(), 2u);
  ASSERT_EQ(hb.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    auto la = ha[e]["losses"].get<std::vector<double>>(), lb = hb[e]["losses"].get<std::vector<double>>();
    ASSERT_EQ(la.size(), 20u);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t s = 0; s < la.size(); ++s) EXPECT_NEAR(la[s], lb[s], 1e-5) << "epoch " << e + 1 << " step " << s;
    EXPECT_NEAR(ha[e]["zero_shot_acc"].get<double>(), hb[e]["zero_shot_acc"].get<double>(), 1e-9);
  }
}

TEST(ClipTrain, FrozenImageTowerStaysFixed) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("frozen");
  auto o = tiny_fmnist(dir);
  o.epochs = 1;
  o.freeze = "image";
  train::train_clip(o);
  // Same seed, same init: compare against an untrained model of the same configuration.
  io::SafetensorsFile f = io::SafetensorsFile::open(dir + "/model.safetensors");
  Clip fresh;
  ClipConfig cfg = ClipConfig::from_json(f.metadata().at("config"));
  fresh.init(cfg, o.seed);
  int text_changed = 0;
  for (Parameter* p : fresh.parameters()) {
    Tensor now = io::read_tensor_f32(f, p->name);
    bool same = std::memcmp(now.raw(), p->value.raw(), now.nbytes()) == 0;
    if (p->name.rfind("visual.", 0) == 0) EXPECT_TRUE(same) << p->name << " changed although frozen";
    else text_changed += !same;
  }
  EXPECT_GT(text_changed, 5);
}

TEST(ClipTrain, TrainsFromCaptionFileAndFineTunesHuggingFaceLayout) {
  // Generated images: coloured squares on white at different places, captions naming the colour.
  std::string d = test::make_temp_dir("caps");
  const char* colours[] = {"red", "green", "blue", "yellow"};
  const uint8_t rgb[4][3] = {{220, 30, 30}, {30, 200, 30}, {30, 30, 220}, {230, 220, 20}};
  std::ofstream jl(d + "/train.jsonl");
  for (int i = 0; i < 32; ++i) {
    Image im(20, 20, 3);
    std::fill(im.pixels.begin(), im.pixels.end(), 255);
    int c = i % 4, x0 = (i * 3) % 10, y0 = (i * 7) % 10;
    for (int y = y0; y < y0 + 8; ++y)
      for (int x = x0; x < x0 + 8; ++x)
        for (int k = 0; k < 3; ++k) im.at(x, y, k) = rgb[c][k];
    std::string name = "img" + std::to_string(i) + ".png";
    write_png(d + "/" + name, im);
    jl << "{\"image\": \"" << name << "\", \"caption\": \"a " << colours[c] << " square\"}\n";
  }
  jl.close();
  // 1) From scratch, with the learned tokenizer; images decoded by 2 workers.
  train::ClipTrainOptions o;
  o.data = d + "/train.jsonl";
  o.out_dir = d + "/run1";
  o.model = fixture_config();
  o.model.context_length = 8;
  o.bpe_merges = 20;
  o.epochs = 2;
  o.batch = 8;
  o.threads = 2;
  auto h = train::train_clip(o);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_LT(h[0].zero_shot_acc, 0);  // not measured for caption files
  ClipRunner r = ClipRunner::open(d + "/run1/model.safetensors");
  Tensor e = r.embed_texts({"a red square"}, true);
  EXPECT_EQ(e.shape()[1], 16);

  // 2) A Hugging Face CLIPModel file in, the same layout out (config.json beside it).
  Clip base;
  ClipConfig bc = fixture_config();
  bc.vocab_size = r.tokenizer().vocab_size();
  base.init(bc, 5);
  std::string hf = d + "/hf";
  ASSERT_EQ(::mkdir(hf.c_str(), 0755), 0);
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, r.tokenizer());
  save_clip_model(hf + "/model.safetensors", base, meta, "hf_clip");
  {
    io::SafetensorsFile f = io::SafetensorsFile::open(hf + "/model.safetensors");
    EXPECT_EQ(io::detect_layout(f), io::Layout::hf_clip);
    EXPECT_TRUE(f.find("vision_model.encoder.layers.1.self_attn.k_proj.bias"));
    EXPECT_TRUE(f.find("text_projection.weight"));
  }
  // Round trip: loading the HF file gives back exactly the weights that were saved.
  auto loaded = load_clip(hf + "/model.safetensors");
  auto pa = base.parameters(), pb = loaded->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t k = 0; k < pa.size(); ++k)
    EXPECT_TRUE(test::close(pa[k]->name, pb[k]->value, pa[k]->value, 0, 0));
  train::ClipTrainOptions ft = o;
  ft.init = hf + "/model.safetensors";
  ft.out_dir = d + "/run2";
  ft.epochs = 1;
  train::train_clip(ft);
  io::SafetensorsFile out = io::SafetensorsFile::open(d + "/run2/model.safetensors");
  EXPECT_EQ(io::detect_layout(out), io::Layout::hf_clip);
  EXPECT_TRUE(test::file_exists(d + "/run2/config.json"));
  auto tuned = load_clip(d + "/run2/model.safetensors");
  EXPECT_EQ(tuned->cfg.to_json(), bc.to_json());

  // A caption file naming a missing image fails clearly (and the checkpoint
  // policy never leaves a torn file).
  std::ofstream(d + "/bad.jsonl") << "{\"image\": \"missing.png\", \"caption\": \"x\"}\n"
                                  << "{\"image\": \"img1.png\", \"caption\": \"y\"}\n";
  train::ClipTrainOptions bad = o;
  bad.data = d + "/bad.jsonl";
  bad.out_dir = d + "/run3";
  bad.batch = 2;
  EXPECT_NE(test::error_of([&] { train::train_clip(bad); }).find("missing.png"), std::string::npos);
}
