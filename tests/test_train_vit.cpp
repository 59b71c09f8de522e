// The main job end to end: training on (a slice of) Fashion-MNIST,
// checkpoint/resume reproducing an uninterrupted run, faults during training
// (SIGKILL, SIGINT, a file-size limit standing in for a full disk while the
// checkpoint is written), and the clear errors for bad data, directories and
// checkpoints.
// Cases needing the dataset skip with a message when it is not installed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <cstring>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <thread>

#include "mmkit/data/fashion_mnist.h"
#include "mmkit/infer/classify.h"
#include "mmkit/image/image.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/eval/vit_eval.h"
#include "mmkit/train/vit_trainer.h"
#include "test_util.h"

using namespace mmkit;

namespace {


train::VitTrainOptions tiny_options(const std::string& out) {
  train::VitTrainOptions o;
  o.out_dir = out;
  o.model.dim = 32;
  o.model.depth = 2;
  o.model.heads = 2;
  o.model.mlp_dim = 64;
  o.model.patch_size = 7;
  o.epochs = 2;
  o.batch = 64;
  o.limit_train = 640;  // 10 steps per epoch
  o.limit_test = 200;
  o.checkpoint_every = 3;
  o.threads = 2;
  return o;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

int run(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string mmkit_bin() { return std::string(MMKIT_BINARY_DIR) + "/mmkit"; }

}  // namespace

TEST(TrainVit, LearnsAndWritesArtifacts) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("learn");
  auto o = tiny_options(dir);
  o.limit_train = 3200;
  o.limit_test = 1000;
  o.epochs = 3;
  auto h = train::train_vit(o);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_LT(h.back().train_loss, h.front().train_loss);
  // 150 steps of a tiny model: far from converged, but far above chance (10%).
  EXPECT_GT(h.back().test_acc, 0.3);
  for (auto f : {"model.safetensors", "checkpoint.safetensors", "training_curves.png", "history.json"})
    EXPECT_TRUE(test::file_exists(dir + "/" + f)) << f;
  // Evaluation of the saved model reproduces the last epoch's test accuracy.
  Vit vit = load_vit(dir);
  auto test = data::load_fashion_mnist(data::kFashionMnistDir, "test");
  test.n = 1000;
  test.pixels.resize(size_t(1000 * test.image_size()));
  test.labels.resize(1000);
  EXPECT_NEAR(evaluate_vit(vit, test).accuracy, h.back().test_acc, 1e-9);
}

TEST(TrainVit, ResumeReproducesUninterruptedRun) {
  REQUIRE_FMNIST();
  std::string a = test::make_temp_dir("full"), b = test::make_temp_dir("resumed");
  auto ha = train::train_vit(tiny_options(a));
  auto ob = tiny_options(b);
  ob.max_steps = 7;  // stop mid-epoch 1 with a checkpoint
  train::train_vit(ob);
  ob.max_steps = 0;
  ob.resume = true;
  auto hb = train::train_vit(ob);
  ASSERT_EQ(ha.size(), hb.size());
  for (size_t e = 0; e < ha.size(); ++e) {
    EXPECT_NEAR(ha[e].train_loss, hb[e].train_loss, 1e-6) << "epoch " << e + 1;
    EXPECT_NEAR(ha[e].test_acc, hb[e].test_acc, 1e-9) << "epoch " << e + 1;
  }
  io::SafetensorsFile fa = io::SafetensorsFile::open(a + "/model.safetensors");
  io::SafetensorsFile fb = io::SafetensorsFile::open(b + "/model.safetensors");
  for (const auto& t : fa.tensors())
    EXPECT_TRUE(test::close(t.name, io::read_tensor_f32(fb, t.name), io::read_tensor_f32(fa, t.name), 1e-6f, 0));
}

TEST(TrainVit, SigkillThenResumeFromLastCheckpoint) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("kill");
  std::string cmd = mmkit_bin() + " train vit --out " + dir +
                    " --dim 32 --depth 2 --heads 2 --mlp-dim 64 --patch 7 --batch 64 --limit-train 3200"
                    " --limit-test 200 --epochs 2 --checkpoint-every 2 --threads 2";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  // Kill hard once a checkpoint exists and training has moved on.
  auto t0 = std::chrono::steady_clock::now();
  while (!test::file_exists(dir + "/checkpoint.safetensors") &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(test::file_exists(dir + "/checkpoint.safetensors")) << "no checkpoint within 60 s";
  // The checkpoint is whole (atomic writes) and the run resumes to the end.
  io::SafetensorsFile ck = io::SafetensorsFile::open(dir + "/checkpoint.safetensors");
  EXPECT_TRUE(ck.metadata().count("train_state"));
  EXPECT_EQ(run(cmd + " --resume 2>/dev/null >/dev/null"), 0);
  std::ifstream hist(dir + "/history.json");
  std::string text((std::istreambuf_iterator<char>(hist)), {});
  EXPECT_NE(text.find("\"epoch\": 2"), std::string::npos) << text;
}

namespace {

// Starts `mmkit ARGS` (stdout to /dev/null, stderr to err_file) in a child with an optional
// RLIMIT_FSIZE; returns its pid.
pid_t spawn_mmkit(const std::vector<std::string>& args, const std::string& err_file, rlim_t fsize_limit = 0) {
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout) || !freopen(err_file.c_str(), "w", stderr)) _exit(126);
    if (fsize_limit) {
      struct rlimit rl = {fsize_limit, fsize_limit};
      if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
    }
    std::vector<char*> argv;
    std::string bin = mmkit_bin();
    argv.push_back(&bin[0]);
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

int64_t checkpoint_step(const std::string& path) {
  io::SafetensorsFile f = io::SafetensorsFile::open(path);
  return nlohmann::json::parse(f.metadata().at("train_state")).at("step").get<int64_t>();
}

std::vector<std::string> tiny_train_args(const std::string& dir) {
  return {"train", "vit", "--out", dir, "--dim", "32", "--depth", "2", "--heads", "2", "--mlp-dim", "64",
          "--patch", "7", "--batch", "64", "--limit-train", "3200", "--limit-test", "200", "--epochs", "2",
          "--checkpoint-every", "2", "--threads", "2"};
}

}  // namespace

// SIGINT (Ctrl-C) mid-epoch: the run saves a checkpoint at the current step, says so, exits 130,
// and that checkpoint is newer than the last periodic one and loads.
TEST(TrainVitFaults, SigintSavesAndExits130) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("sigint");
  pid_t pid = spawn_mmkit(tiny_train_args(dir), dir + "/stderr.txt");
  ASSERT_GT(pid, 0);
  const std::string ckpt = dir + "/checkpoint.safetensors";
  auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  bool exited = false;
  while (!test::file_exists(ckpt) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120)) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(exited) << "training ended before it could be interrupted: " << slurp(dir + "/stderr.txt");
  ASSERT_TRUE(test::file_exists(ckpt)) << "no checkpoint within 120 s";
  kill(pid, SIGINT);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  std::string err = slurp(dir + "/stderr.txt");
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  const int64_t step = checkpoint_step(ckpt);
  EXPECT_GE(step, 2);
  // Interrupted mid-epoch the message names the step it saved; at an epoch end the epoch.
  bool mid = err.find("interrupted at step " + std::to_string(step) + "; checkpoint saved") != std::string::npos;
  bool end = err.find("stopped after epoch") != std::string::npos;
  EXPECT_TRUE(mid || end) << err;
  EXPECT_NO_THROW(load_vit(dir));
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temp file left: " << e.path();
}

// A full disk while the checkpoint is written: simulated with RLIMIT_FSIZE (writes past it fail
// with EFBIG, as ENOSPC would; mmkit ignores SIGXFSZ). The run fails with a message naming the
// file, and the previous checkpoint is byte-for-byte intact, loads, and resumes.
TEST(TrainVitFaults, DiskFullKeepsPreviousCheckpoint) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("diskfull");
  auto o = tiny_options(dir);
  o.max_steps = 3;
  train::train_vit(o);  // checkpoint at step 3
  const std::string ckpt = dir + "/checkpoint.safetensors";
  const std::string before = slurp(ckpt);
  ASSERT_GT(before.size(), 10000u);
  ASSERT_EQ(checkpoint_step(ckpt), 3);

  // Resume with a limit well below the checkpoint's size (but above every other file's).
  std::vector<std::string> args = {"train", "vit", "--out", dir, "--resume", "--dim", "32", "--depth", "2",
                                   "--heads", "2", "--mlp-dim", "64", "--patch", "7", "--batch", "64",
                                   "--limit-train", "640", "--limit-test", "200", "--epochs", "2",
                                   "--checkpoint-every", "3", "--threads", "2"};
  pid_t pid = spawn_mmkit(args, dir + "/stderr.txt", rlim_t(before.size() / 2));
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  std::string err = slurp(dir + "/stderr.txt");
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_NE(err.find("mmkit: error: write_safetensors " + ckpt), std::string::npos) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;

  EXPECT_TRUE(slurp(ckpt) == before) << "the previous checkpoint was modified";
  EXPECT_EQ(checkpoint_step(ckpt), 3);
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temp file left: " << e.path();
  // With space again, the run resumes from it and finishes.
  o.max_steps = 0;
  o.resume = true;
  auto h = train::train_vit(o);
  EXPECT_EQ(h.size(), 2u);
}

TEST(TrainVitErrors, MissingAndCorruptData) {
  std::string dir = test::make_temp_dir("data");
  auto o = tiny_options(dir + "/out");
  o.data_dir = dir + "/nowhere";
  EXPECT_NE(test::error_of([&] { train::train_vit(o); }).find("dataset-fashion-mnist"), std::string::npos);
  // Wrong magic number in an otherwise well-formed gzip IDX file.
  std::string d2 = dir + "/bad";
  ASSERT_EQ(mkdir(d2.c_str(), 0755), 0);
  std::vector<uint8_t> img = be32(1234);
  for (uint32_t v : {10u, 28u, 28u})
    for (uint8_t b : be32(v)) img.push_back(b);
  img.resize(img.size() + 10 * 28 * 28);
  write_gz(d2 + "/train-images-idx3-ubyte.gz", img);
  std::vector<uint8_t> lab = be32(2049);
  for (uint8_t b : be32(10)) lab.push_back(b);
  lab.resize(lab.size() + 10);
  write_gz(d2 + "/train-labels-idx1-ubyte.gz", lab);
  o.data_dir = d2;
  std::string m = test::error_of([&] { train::train_vit(o); });
  EXPECT_NE(m.find("magic"), std::string::npos) << m;
  // Truncated gzip stream.
  std::ofstream(d2 + "/train-images-idx3-ubyte.gz", std::ios::binary) << "\x1f\x8b\x08\x00garbage";
  m = test::error_of([&] { train::train_vit(o); });
  EXPECT_NE(m.find("train-images-idx3-ubyte.gz"), std::string::npos) << m;
}

TEST(TrainVitErrors, UnwritableOutputAndExistingRun) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("out");
  std::ofstream(dir + "/file") << "x";
  auto o = tiny_options(dir + "/file/sub");  // parent is a regular file
  std::string m = test::error_of([&] { train::train_vit(o); });
  EXPECT_NE(m.find("cannot create directory"), std::string::npos) << m;
  auto o2 = tiny_options(dir + "/run");
  o2.epochs = 1;
  o2.max_steps = 1;
  train::train_vit(o2);
  m = test::error_of([&] { train::train_vit(o2); });
  EXPECT_NE(m.find("--resume"), std::string::npos) << m;
}

TEST(TrainVitErrors, CheckpointNotMatchingTheModel) {
  std::string dir = test::make_temp_dir("ckpt");
  // A model file whose config says dim 32 but whose tensors are dim 16.
  VitConfig small;
  small.image_size = 28;
  small.patch_size = 7;
  small.dim = 16;
  small.depth = 1;
  small.heads = 2;
  small.mlp_dim = 32;
  Vit v;
  v.init(small, 0);
  VitConfig claimed = small;
  claimed.dim = 32;
  io::save_parameters(dir + "/model.safetensors", v.parameters(), {{"config", claimed.to_json()}});
  std::string m = test::error_of([&] { load_vit(dir); });
  EXPECT_NE(m.find("tensor 'cls_token': got [1, 1, 16], expected [1, 1, 32]"), std::string::npos) << m;
  // Not a safetensors file at all.
  std::ofstream(dir + "/junk.safetensors") << "not a checkpoint";
  m = test::error_of([&] { load_vit(dir + "/junk.safetensors"); });
  EXPECT_NE(m.find("junk.safetensors"), std::string::npos) << m;
  // CLI: clear message and non-zero exit.
  EXPECT_EQ(run(mmkit_bin() + " eval vit --model " + dir + " --json > /dev/null 2>&1"), 1);
  EXPECT_EQ(run(mmkit_bin() + " classify --model " + dir + "/missing " + dir + "/x.png > /dev/null 2>&1"), 1);
}

TEST(TrainVit, ClassifyImageFilesMatchesEvaluation) {
  REQUIRE_FMNIST();
  std::string dir = test::make_temp_dir("classify");
  auto o = tiny_options(dir);
  o.epochs = 1;
  train::train_vit(o);
  Vit vit = load_vit(dir);
  auto test = data::load_fashion_mnist(data::kFashionMnistDir, "test");
  // Write 8 test images as PNG, classify the files, compare with the
  // model's prediction on the raw tensors.
  std::vector<Image> images;
  std::vector<std::string> files;
  for (int i = 0; i < 8; ++i) {
    Image im(28, 28, 1);
    std::memcpy(im.pixels.data(), test.image(i), 784);
    files.push_back(dir + "/img" + std::to_string(i) + ".png");
    write_png(files.back(), im);
    images.push_back(decode_image_file(files.back()));
  }
  auto res = classify_images(vit, images);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Tensor x = Tensor::empty(Shape{8, 1, 28, 28});
  std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5, 6, 7};
  images_to_input(vit, test, idx.data(), 8, x.f32());
  const float* L = g.data(vit_forward(g, vit, g.constant(x)));
  for (int i = 0; i < 8; ++i) {
    int best = 0;
    for (int k = 1; k < 10; ++k)
      if (L[i * 10 + k] > L[i * 10 + best]) best = k;
    EXPECT_EQ(res[size_t(i)].label, best) << files[size_t(i)];
  }
  EXPECT_EQ(run(mmkit_bin() + " classify --model " + dir + " --json " + files[0] + " > " + dir + "/out.json"), 0);
  std::ifstream f(dir + "/out.json");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("\"label\":\"" + res[0].name + "\""), std::string::npos) << text;
}
