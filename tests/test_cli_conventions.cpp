// Issue #24, acceptance 3: each surprise and inconsistency the issue lists, as the behaviour the
// conventions of docs/CLI.md promise, through the real `mmkit` binary (and `mmkit serve` over
// HTTP where the server is concerned).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/data/fashion_mnist.h"
#include "test_util.h"

using namespace mmkit;
using nlohmann::json;

namespace {

struct Result {
  int code;
  std::string out, err;
};

// `mmkit ARGS` (10 min at most), stdout and stderr captured.
Result run_cli(const std::string& args) {
  const std::string dir = test::make_temp_dir("conv_run");
  const std::string cmd = "timeout 600 " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " > " + dir +
                          "/out 2> " + dir + "/err";
  int st = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  Result r{WIFEXITED(st) ? WEXITSTATUS(st) : 1000, slurp(dir + "/out"), slurp(dir + "/err")};
  std::filesystem::remove_all(dir);
  return r;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::set<std::string> keys(const json& j) {
  std::set<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.insert(it.key());
  return k;
}

// A few generated images in dir/<name>.png.
void write_images(const std::string& dir, int n) {
  std::filesystem::create_directories(dir);
  for (int i = 0; i < n; ++i) {
    Canvas c(48, 48, Rgb{uint8_t(200 + i), 220, 240});
    c.disc(12 + 3 * i, 24, 9, Rgb{uint8_t(40 * i), 40, 200});
    write_png(dir + "/img" + std::to_string(i) + ".png", c.image());
  }
}

// `mmkit serve ARGS --port 0` in the background; port() waits for it to listen (0: it exited).
struct Server {
  pid_t pid = 0;
  std::string dir;
  explicit Server(const std::string& args) : dir(test::make_temp_dir("conv_serve")) {
    pid = fork();
    if (pid == 0) {
      const std::string cmd = "exec " + std::string(MMKIT_BINARY_DIR) + "/mmkit serve " + args +
                              " --port 0 --port-file " + dir + "/port > " + dir + "/log 2>&1";
      execl("/bin/bash", "bash", "-c", cmd.c_str(), (char*)nullptr);
      _exit(127);
    }
  }
  int port() {
    for (int i = 0; i < 1200; ++i) {
      if (test::file_exists(dir + "/port")) {
        int p = 0;
        std::ifstream(dir + "/port") >> p;
        if (p > 0) return p;
      }
      int st;
      if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid) {
        exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 1000;
        pid = 0;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }
  std::string log() const { return slurp(dir + "/log"); }
  int exit_code = -1;
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
  }
};

// A tiny ViT run on Fashion-MNIST (4 steps per epoch), for runs that need a trained model.
const char* kTinyVit =
    "train vit --limit-train 256 --limit-test 64 --batch 64 --dim 16 --depth 1 --heads 2 --mlp-dim 32 --patch 7 "
    "--threads 2";

}  // namespace

// "Fails as written" 1: the repeatable --template swallowed the image after it.
TEST(CliConventions, RepeatableOptionsLeaveThePositionalArguments) {
  const std::string W = test::make_temp_dir("conv_tmpl");
  write_images(W + "/img", 2);
  ASSERT_EQ(run_cli("init-clip --preset tiny --out " + W + "/clip.safetensors").code, 0);
  Result r = run_cli("zero-shot --model " + W + "/clip.safetensors --labels cat,dog,car --template \"a photo of a {}.\" " +
                   W + "/img/img0.png --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["image"], W + "/img/img0.png");
  // Two templates, each followed by an image: both images are classified with both templates.
  r = run_cli("zero-shot --model " + W + "/clip.safetensors --labels cat,dog --template \"a photo of a {}.\" " + W +
            "/img/img0.png --template \"a drawing of a {}.\" " + W + "/img/img1.png --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["image"], W + "/img/img1.png");
  // embed: --text and --image are repeatable the same way.
  r = run_cli("embed --model " + W + "/clip.safetensors --text \"a cat\" --text \"a dog\" --image " + W +
            "/img/img0.png --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["text_embeddings"].size(), 2u);
  EXPECT_EQ(j["image_embeddings"].size(), 1u);
  std::filesystem::remove_all(W);
}

// "Fails as written" 2: --out (and every other output path) creates its folders.
TEST(CliConventions, OutputPathsCreateTheirFolders) {
  const std::string W = test::make_temp_dir("conv_out");
  write_images(W + "/img", 3);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data sort-of-clevr --out " + W + "/a/b/soc --train 2 --test 1", W + "/a/b/soc/train.jsonl"},
      {"data soc-captions --out " + W + "/c/d/cap --train 2 --test 1", W + "/c/d/cap/train.jsonl"},
      {"data shapes --n 2 --out " + W + "/e/f/shapes", W + "/e/f/shapes/shape_000001.png"},
      {"init-clip --preset tiny --out " + W + "/g/h/clip.safetensors", W + "/g/h/clip.safetensors"},
      {"quantize --model " + W + "/g/h/clip.safetensors --to int8 --out " + W + "/i/j/q.safetensors",
       W + "/i/j/q.safetensors"},
      {"embed --model " + W + "/g/h/clip.safetensors --images " + W + "/img --out " + W + "/k/l/e.jsonl",
       W + "/k/l/e.jsonl"},
      {"index build --model " + W + "/g/h/clip.safetensors --images " + W + "/img --out " + W + "/m/n/idx",
       W + "/m/n/idx/index.faiss"},
  };
  for (const auto& [args, made] : cases) {
    Result r = run_cli(args);
    EXPECT_EQ(r.code, 0) << "mmkit " << args << "\n" << r.err;
    EXPECT_TRUE(test::file_exists(made)) << "mmkit " << args << " did not write " << made;
  }
  std::filesystem::remove_all(W);
}

// "Fails as written" 3 and the --model convention: a stopped CLIP run leaves model.safetensors,
// and the run folder, the model file and the training checkpoint all load where a CLIP does.
TEST(CliConventions, AStoppedRunLoadsAsFolderFileOrCheckpoint) {
  REQUIRE_FMNIST();
  const std::string W = test::make_temp_dir("conv_stop");
  Result r = run_cli("train clip --out " + W + "/run --limit-train 64 --limit-test 32 --eval-images 16 --batch 32 "
                   "--bpe-merges 50 --max-steps 1 --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(test::file_exists(W + "/run/model.safetensors"));
  std::string first;
  for (const std::string& m : {W + "/run", W + "/run/", W + "/run/model.safetensors", W + "/run/checkpoint.safetensors"}) {
    r = run_cli("eval zero-shot --model " + m + " --limit 20 --json");
    ASSERT_EQ(r.code, 0) << m << "\n" << r.err;
    json j = json::parse(r.out);
    if (first.empty()) first = j["top1"].dump() + j["top5"].dump();
    EXPECT_EQ(j["top1"].dump() + j["top5"].dump(), first) << m << ": another model than the run folder's";
    EXPECT_EQ(j["confusion_png"], W + "/run/confusion_matrix.png");  // the same name as eval vit's
  }
  // A folder without a model says what it looked for.
  std::filesystem::create_directories(W + "/empty");
  r = run_cli("eval zero-shot --model " + W + "/empty");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, W + "/empty has no model.safetensors")) << r.err;
  // A file whose tensors do not match lists a dozen problems and counts the rest, not hundreds.
  {
    Clip m;
    m.init(test::tiny_clip_config(), 1);
    std::vector<io::NamedTensor> junk;
    for (int i = 0; i < 30; ++i) junk.push_back({"junk." + std::to_string(i), Tensor::zeros(Shape{2})});
    io::save_parameters(W + "/junk.safetensors", m.parameters(), {{"config", test::tiny_clip_config().to_json()}}, junk);
  }
  r = run_cli("eval zero-shot --model " + W + "/junk.safetensors --limit 5");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "(30 problems)")) << r.err;
  EXPECT_TRUE(contains(r.err, "... and 18 more")) << r.err;
  EXPECT_LT(std::count(r.err.begin(), r.err.end(), '\n'), 20) << r.err;
  std::filesystem::remove_all(W);
}

// Surprise 1: --resume used the defaults for training flags not given again.
TEST(CliConventions, ResumeRestoresTheRunsOptions) {
  REQUIRE_FMNIST();
  const std::string W = test::make_temp_dir("conv_resume");
  const std::string run = std::string(kTinyVit) + " --out " + W + "/a";
  Result r = run_cli(run + " --epochs 3 --max-steps 2");  // stopped in epoch 1 of 3
  ASSERT_EQ(r.code, 0) << r.err;
  // Without the flags again: 3 epochs (not the default 20) on 256 images (not 60,000).
  r = run_cli("train vit --out " + W + "/a --resume --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "--epochs 3")) << r.err;
  EXPECT_TRUE(contains(r.err, "--limit-train 256")) << r.err;
  json hist = json::parse(slurp(W + "/a/history.json"));
  EXPECT_EQ(hist.size(), 3u);
  // Another value: an error naming the flag and the stored value, until --override.
  r = run_cli(run + " --resume --epochs 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--epochs 4 (stored: 3)")) << r.err;
  EXPECT_TRUE(contains(r.err, "--override")) << r.err;
  EXPECT_EQ(json::parse(slurp(W + "/a/history.json")).size(), 3u);  // nothing ran
  r = run_cli(run + " --resume --epochs 4 --override");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(slurp(W + "/a/history.json")).size(), 4u);
  // The same value again is fine; an architecture flag cannot change at all.
  r = run_cli("train vit --out " + W + "/a --resume --epochs 4 --dim 16 --threads 2");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_cli("train vit --out " + W + "/a --resume --dim 32 --override --threads 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--dim 32 differs from the run's 16")) << r.err;
  EXPECT_TRUE(contains(r.err, "architecture")) << r.err;
  std::filesystem::remove_all(W);
}

// Surprise 2: data arguments take a file or a folder alike.
TEST(CliConventions, DataTakesAFileOrAFolder) {
  const std::string W = test::make_temp_dir("conv_data");
  ASSERT_EQ(run_cli("data soc-captions --out " + W + "/cap --train 8 --test 2").code, 0);
  ASSERT_EQ(run_cli("data sort-of-clevr --out " + W + "/soc --train 8 --test 2").code, 0);
  const std::string cap_args = " --batch 4 --dim 16 --depth 1 --dec-dim 16 --dec-depth 1 --mlp-dim 32 --dec-mlp-dim 32 "
                               "--val-images 2 --max-steps 1 --threads 2";
  // A file alone: the held-out file is asked for by name.
  Result r = run_cli("train caption --data " + W + "/cap/train.jsonl --out " + W + "/c1" + cap_args);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--test-data")) << r.err;
  r = run_cli("train caption --data " + W + "/cap/train.jsonl --test-data " + W + "/cap/test.jsonl --out " + W + "/c2" +
            cap_args);
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_cli("train vqa --data " + W + "/soc/train.jsonl --test-data " + W + "/soc/test.jsonl --out " + W +
            "/v1 --batch 4 --dim 16 --mlp-dim 32 --stem-dim 8 --max-steps 1 --threads 2");
  EXPECT_EQ(r.code, 0) << r.err;
  // train clip: a folder holding train.jsonl (captions lists) is that file.
  r = run_cli("train clip --data " + W + "/cap --out " + W + "/k1 --batch 4 --image-size 32 --patch 8 --bpe-merges 50 "
            "--max-steps 1 --threads 2");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_cli("train clip --data " + W + "/cap --out " + W + "/k1 --resume --max-steps 2 --threads 2");  // the same data
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_cli("eval retrieval --model " + W + "/k1 --data " + W + "/cap --json");  // and its test.jsonl here
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"], 2);
  std::filesystem::remove_all(W);
}

// Surprise 3: search and serve accepted an index built with another model.
TEST(CliConventions, SearchAndServeRefuseAnotherModelsIndex) {
  const std::string W = test::make_temp_dir("conv_index");
  write_images(W + "/img", 6);
  ASSERT_EQ(run_cli("init-clip --preset tiny --seed 1 --out " + W + "/a.safetensors").code, 0);
  ASSERT_EQ(run_cli("init-clip --preset tiny --seed 2 --out " + W + "/b.safetensors").code, 0);  // same config
  ASSERT_EQ(run_cli("quantize --model " + W + "/a.safetensors --to int8 --out " + W + "/a8.safetensors").code, 0);
  Result r = run_cli("index build --model " + W + "/a.safetensors --images " + W + "/img --out " + W + "/idx");
  ASSERT_EQ(r.code, 0) << r.err;
  // The same model, also quantised: results.
  for (const char* m : {"a", "a8"}) {
    r = run_cli("search --index " + W + "/idx --model " + W + "/" + m + ".safetensors \"a blue disc\" --json");
    ASSERT_EQ(r.code, 0) << m << "\n" << r.err;
    EXPECT_EQ(json::parse(r.out)["results"].size(), 5u) << m;  // --top-k 5 by default
  }
  // The probe that tells them apart: the quantised model's agrees with the model's.
  {
    ClipRunner a = ClipRunner::open(W + "/a.safetensors"), a8 = ClipRunner::open(W + "/a8.safetensors");
    std::vector<float> pa = index::model_probe(a), p8 = index::model_probe(a8);
    double dot = 0;
    for (size_t i = 0; i < pa.size(); ++i) dot += double(pa[i]) * p8[i];  // both normalised
    std::printf("probe cosine, the same tiny CLIP f32 vs int8: %.5f\n", dot);
    EXPECT_GT(dot, 0.99);
  }
  // Another model of the same shape: refused, naming the model, the index and the cosine.
  r = run_cli("search --index " + W + "/idx --model " + W + "/b.safetensors \"a blue disc\"");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, W + "/b.safetensors is not the model index " + W + "/idx was built with")) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("cosine (-?[0-9.e-]+)"))) << r.err;
  std::printf("probe cosine, another seeded tiny CLIP: %s\n", m[1].str().c_str());
  EXPECT_LT(std::stod(m[1].str()), 0.9);
  // index build refuses to continue an index with it too.
  r = run_cli("index build --model " + W + "/b.safetensors --images " + W + "/img --out " + W + "/idx");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "is not the model")) << r.err;
  // serve: refused before it listens.
  {
    Server s("--model " + W + "/b.safetensors --index " + W + "/idx");
    EXPECT_EQ(s.port(), 0) << "mmkit serve listened with another model's index:\n" << s.log();
    EXPECT_EQ(s.exit_code, 1);
    EXPECT_TRUE(contains(s.log(), "is not the model index")) << s.log();
  }
  {
    Server s("--model " + W + "/a8.safetensors --index " + W + "/idx");
    EXPECT_GT(s.port(), 0) << s.log();
  }
  std::filesystem::remove_all(W);
}

// Surprise 4: classify on a model without class names printed indices, with no way to name them.
TEST(CliConventions, ClassifyTakesALabelsFile) {
  REQUIRE_FMNIST();
  const std::string W = test::make_temp_dir("conv_labels");
  write_images(W + "/img", 1);
  Result r = run_cli(std::string(kTinyVit) + " --out " + W + "/vit --epochs 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, " after 1 epoch; ")) << r.out;  // not "1 epochs"
  // Another kind of checkpoint: named in words that read ("a checkpoint in the ... layout").
  ASSERT_EQ(run_cli("init-clip --preset tiny --out " + W + "/clip.safetensors").code, 0);
  r = run_cli("classify --model " + W + "/clip.safetensors " + W + "/img/img0.png");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "is a checkpoint in the OpenAI/OpenCLIP CLIP layout, not a ViT classifier")) << r.err;
  std::ofstream(W + "/names.txt") << "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n";
  r = run_cli("classify --model " + W + "/vit " + W + "/img/img0.png --labels " + W + "/names.txt --json --top-k 3");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out)[0];
  const std::vector<std::string> names = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
  EXPECT_EQ(j["label"], names.at(j["index"].get<size_t>()));
  ASSERT_EQ(j["top"].size(), 3u);
  EXPECT_EQ(j["top"][0]["label"], j["label"]);
  EXPECT_EQ(j["top"][0]["probability"], j["probability"]);
  // A file with another number of names.
  std::ofstream(W + "/short.txt") << "a\nb\n";
  r = run_cli("classify --model " + W + "/vit " + W + "/img/img0.png --labels " + W + "/short.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "has 2 lines but the model has 10 classes")) << r.err;
  // The server's classifier takes the same file (--classifier-labels) and answers the CLI's labels.
  {
    Server s("--model " + W + "/clip.safetensors --classifier " + W + "/vit --classifier-labels " + W + "/names.txt");
    const int port = s.port();
    ASSERT_GT(port, 0) << s.log();
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    auto res = c.Post("/v1/classify", httplib::MultipartFormDataItems{{"image", slurp(W + "/img/img0.png"), "img0.png",
                                                                       "image/png"},
                                                                      {"top_k", "3", "", ""}});
    ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    const json h = json::parse(res->body);
    EXPECT_EQ(h["label"], j["label"]);
    ASSERT_EQ(h["top"].size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(h["top"][i]["label"], j["top"][i]["label"]) << i;
  }
  {
    Server s("--model " + W + "/clip.safetensors --classifier " + W + "/vit --classifier-labels " + W + "/short.txt");
    EXPECT_EQ(s.port(), 0) << "mmkit serve listened with a labels file of the wrong length:\n" << s.log();
    EXPECT_EQ(s.exit_code, 1);
    EXPECT_TRUE(contains(s.log(), "has 2 lines but the model has 10 classes")) << s.log();
  }
  std::filesystem::remove_all(W);
}

// Surprise 5: embed printed one number per line without --json.
TEST(CliConventions, ReadableOutputByDefaultJsonWithJson) {
  const std::string W = test::make_temp_dir("conv_embed");
  write_images(W + "/img", 1);
  ASSERT_EQ(run_cli("init-clip --preset tiny --out " + W + "/clip.safetensors").code, 0);
  const std::string args = "embed --model " + W + "/clip.safetensors --image " + W + "/img/img0.png --text \"a cat\"";
  Result r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(std::count(r.out.begin(), r.out.end(), '\n'), 10) << r.out;
  EXPECT_TRUE(contains(r.out, "64-d, norm 1.0000")) << r.out;
  EXPECT_TRUE(contains(r.out, "cosine similarity")) << r.out;
  r = run_cli(args + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["image_embeddings"][0].size(), 64u);
  std::filesystem::remove_all(W);
}

// Inconsistent output: the same JSON keys on the CLI and over HTTP, and accuracies as fractions.
TEST(CliConventions, TheSameJsonKeysOnTheCliAndOverHttp) {
  REQUIRE_FMNIST();
  const std::string W = test::make_temp_dir("conv_keys");
  write_images(W + "/img", 3);
  ASSERT_EQ(run_cli("init-clip --preset tiny --out " + W + "/clip.safetensors").code, 0);
  ASSERT_EQ(run_cli("index build --model " + W + "/clip.safetensors --images " + W + "/img --out " + W + "/idx").code, 0);
  Result r = run_cli(std::string(kTinyVit) + " --out " + W + "/vit --epochs 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string img = W + "/img/img0.png";
  r = run_cli("zero-shot --model " + W + "/clip.safetensors --labels cat,dog " + img + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json cli_zs = json::parse(r.out)[0];
  r = run_cli("classify --model " + W + "/vit " + img + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json cli_cl = json::parse(r.out)[0];
  r = run_cli("search --index " + W + "/idx \"a cat\" --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json cli_se = json::parse(r.out);
  // Accuracies: fractions in readable output too.
  r = run_cli("eval vit --model " + W + "/vit --limit 100");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("test accuracy 0\\.[0-9]{4} "))) << r.out;
  EXPECT_FALSE(contains(r.out, "%")) << r.out;

  Server s("--model " + W + "/clip.safetensors --index " + W + "/idx --classifier " + W + "/vit");
  const int port = s.port();
  ASSERT_GT(port, 0) << s.log();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  httplib::MultipartFormDataItems zs = {{"image", slurp(img), "img0.png", "image/png"}, {"labels", "cat, dog", "", ""}};
  auto res = c.Post("/v1/zero-shot", zs);
  ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  const json http_zs = json::parse(res->body);
  res = c.Post("/v1/classify", httplib::MultipartFormDataItems{{"image", slurp(img), "img0.png", "image/png"}});
  ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  const json http_cl = json::parse(res->body);
  res = c.Post("/v1/search", json{{"text", "a cat"}}.dump(), "application/json");
  ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  const json http_se = json::parse(res->body);

  // Every key the server answers is the CLI's too (the CLI adds the image it read; search adds
  // the file's path, the server a thumbnail URL).
  auto expect_subset = [](std::set<std::string> http, std::set<std::string> cli, const std::string& what,
                          std::set<std::string> http_only = {}) {
    for (const auto& k : http)
      if (!http_only.count(k)) {
        EXPECT_TRUE(cli.count(k)) << what << ": HTTP key '" << k << "' missing on the CLI";
      }
  };
  expect_subset(keys(http_zs), keys(cli_zs), "zero-shot");
  EXPECT_EQ(http_zs["label"], cli_zs["label"]);
  expect_subset(keys(http_cl), keys(cli_cl), "classify");
  ASSERT_FALSE(http_cl["top"].empty());
  EXPECT_EQ(keys(http_cl["top"][0]), keys(cli_cl["top"][0]));
  EXPECT_EQ(keys(http_cl["top"][0]), (std::set<std::string>{"label", "probability"}));
  EXPECT_EQ(http_cl["top"].size(), cli_cl["top"].size());  // top_k 5 on both
  expect_subset(keys(http_se), keys(cli_se), "search", {"query"});
  ASSERT_FALSE(http_se["results"].empty());
  expect_subset(keys(http_se["results"][0]), keys(cli_se["results"][0]), "search results", {"thumb"});
  EXPECT_EQ(http_se["results"].size(), cli_se["results"].size());  // top_k 5 on both (3 images here)
  EXPECT_EQ(http_se["results"][0]["name"], cli_se["results"][0]["name"]);
  std::filesystem::remove_all(W);
}
