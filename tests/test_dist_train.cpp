// Data-parallel training (issue #17): `mpirun -np 2 mmkit train <model>` at
// global batch 2B gives the per-step losses and the final weights of one
// process at batch 2B, for each of the four models, over shared memory and
// over TCP on loopback (the path several machines would use). Skipped when
// mmkit was built without MPI or mpirun is missing.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "mmkit/dist/communicator.h"
#include "mmkit/io/safetensors.h"
#include "test_util.h"

using namespace mmkit;

namespace {

bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

std::string mpirun(int np, const std::string& extra) {
  return test::mpirun_prefix(np, extra, 300) + std::string(MMKIT_BINARY_DIR) + "/mmkit ";
}

int sh(const std::string& cmd, const std::string& log) {
  const int st = std::system((cmd + " > " + log + " 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

std::vector<double> step_losses(const std::string& run) {
  std::vector<double> out;
  std::istringstream in(slurp(run + "/losses.tsv"));
  long long step;
  double loss, lr;
  while (in >> step >> loss >> lr) out.push_back(loss);
  return out;
}

// Attention key biases get an exactly zero gradient (adding b_k to every key
// adds q . b_k to all logits of a query, which the softmax ignores); in float
// they receive rounding noise that AdamW's normalisation turns into steps of
// about the learning rate, in one process as in two. Their values are not a
// function of the data, so they are left out: [begin, end) of the elements
// of `name` that are compared.
std::pair<int64_t, int64_t> skipped_key_bias(const std::string& name, int64_t n) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  if (ends("k_proj.bias")) return {0, n};
  if (ends("in_proj_bias")) return {n / 3, 2 * n / 3};  // packed [q | k | v]
  return {0, 0};
}

// Every tensor of b within tol x (its largest magnitude) of a's.
void expect_same_weights(const std::string& a_path, const std::string& b_path, double tol) {
  io::SafetensorsFile a = io::SafetensorsFile::open(a_path), b = io::SafetensorsFile::open(b_path);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  int checked = 0;
  for (const io::TensorView& ta : a.tensors()) {
    const std::string& name = ta.name;
    ASSERT_TRUE(b.find(name)) << name;
    if (ta.dtype != DType::f32) continue;
    const Tensor x = io::read_tensor_f32(a, name), y = io::read_tensor_f32(b, name);
    ASSERT_EQ(x.numel(), y.numel()) << name;
    double scale = 0, worst = 0;
    int64_t at = 0;
    const auto skip = skipped_key_bias(name, x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (i >= skip.first && i < skip.second) continue;
      scale = std::max(scale, double(std::fabs(x.f32()[i])));
      const double d = std::fabs(double(x.f32()[i]) - y.f32()[i]);
      if (d > worst) worst = d, at = i;
    }
    EXPECT_LE(worst, tol * std::max(scale, 1e-12))
        << name << "[" << at << "]: " << x.f32()[at] << " vs " << y.f32()[at] << " (scale " << scale << ")";
    ++checked;
  }
  EXPECT_GT(checked, 5);
}

class DistTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!dist::built_with_mpi()) GTEST_SKIP() << "mmkit was built without MPI (libopenmpi-dev)";
    if (!have_mpirun()) GTEST_SKIP() << "mpirun not found (Debian openmpi-bin)";
  }

  // The same 20 steps in one process and in two (shared memory, then TCP on loopback).
  void check(const std::string& name, const std::string& args, double weight_tol = 1e-5) {
    const std::string dir = test::make_temp_dir("dist_" + name);
    const std::string common = args + " --threads 1 --max-steps 20 --checkpoint-every 0";
    ASSERT_EQ(sh(std::string(MMKIT_BINARY_DIR) + "/mmkit " + common + " --out " + dir + "/one", dir + "/one.log"), 0)
        << slurp(dir + "/one.log");
    const std::vector<double> want = step_losses(dir + "/one");
    ASSERT_EQ(want.size(), 20u);
    for (const char* btl : {"", "--mca btl tcp,self"}) {
      SCOPED_TRACE(std::string("mpirun -np 2 ") + btl);
      const std::string out = dir + (*btl ? "/tcp" : "/shm");
      ASSERT_EQ(sh(mpirun(2, btl) + common + " --out " + out, out + ".log"), 0) << slurp(out + ".log");
      const std::string log = slurp(out + ".log");
      EXPECT_NE(log.find("data-parallel: MPI: 2 processes"), std::string::npos) << log;
      const std::vector<double> got = step_losses(out);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_LE(std::fabs(got[i] - want[i]), 1e-5 * std::fabs(want[i])) << "step " << i << ": " << got[i]
                                                                          << " vs " << want[i];
      expect_same_weights(dir + "/one/model.safetensors", out + "/model.safetensors", weight_tol);
    }
  }
};

}  // namespace

TEST_F(DistTrain, VitMatchesOneProcess) {
  check("vit", "train vit --data fashion-mnist --limit-train 320 --limit-test 64 --epochs 2 --batch 32 --dim 32 "
               "--depth 2 --heads 2 --mlp-dim 64 --patch 7 --seed 5 --dropout 0.1");
}

TEST_F(DistTrain, ClipMatchesOneProcessWithTheLossOverTheGlobalBatch) {
  check("clip", "train clip --data fashion-mnist --limit-train 320 --limit-test 64 --eval-images 32 --epochs 2 "
                "--batch 32 --seed 5 --bpe-merges 100 --vision-layers 1 --text-layers 1 --vision-width 32 "
                "--text-width 32 --embed-dim 16 --vision-heads 2 --text-heads 2");
}

// SigLIP's sigmoid loss: each rank's images against the all-gathered texts;
// the model file's logit_bias is compared with the other weights. Weights
// within 2e-5 of each tensor's scale: measured (2026-12-07), every tensor is
// within 5.8e-6 except one token-embedding row (token 72) at 1.29e-5, the
// next rows below 6e-8. The ranks sum the texts' gradients in another order
// than one process (per-rank partial sums, then the all-reduce); our reading,
// not traced further, is that this row's small gradient makes AdamW's
// normalised step magnify that rounding. One process is bitwise the same
// with 1 or 2 threads.
TEST_F(DistTrain, ClipSigmoidLossMatchesOneProcess) {
  check("clip_sigmoid",
        "train clip --loss sigmoid --data fashion-mnist --limit-train 320 --limit-test 64 "
        "--eval-images 32 --epochs 2 --batch 32 --seed 5 --bpe-merges 100 --vision-layers 1 "
        "--text-layers 1 --vision-width 32 --text-width 32 --embed-dim 16 --vision-heads 2 --text-heads 2",
        2e-5);
}

TEST_F(DistTrain, VqaMatchesOneProcess) {
  const std::string dir = test::make_temp_dir("dist_vqa_data");
  ASSERT_EQ(test::run_mmkit("data sort-of-clevr --out " + dir + "/soc --train 48 --test 8 --seed 3", dir).code, 0);
  check("vqa", "train vqa --data " + dir + "/soc --epochs 2 --batch 4 --seed 5 --dim 32 --stem-dim 16 "
               "--mlp-dim 64 --relation-dim 16 --hop-heads 2 --hop-channels 8");
}

TEST_F(DistTrain, CaptionerMatchesOneProcessWithDropout) {
  const std::string dir = test::make_temp_dir("dist_cap_data");
  ASSERT_EQ(test::run_mmkit("data soc-captions --out " + dir + "/cap --train 48 --test 8 --seed 3", dir).code, 0);
  check("caption", "train caption --data " + dir + "/cap --epochs 2 --batch 4 --dim 32 --depth 1 --dec-dim 32 "
                   "--dec-depth 1 --mlp-dim 64 --dec-mlp-dim 64 --val-images 4 --seed 5 --dropout 0.1");
}

TEST_F(DistTrain, GlobalBatchMustBeDivisible) {
  const std::string dir = test::make_temp_dir("dist_div");
  const int code = sh(mpirun(2, "") + "train vit --data fashion-mnist --limit-train 64 --limit-test 16 --epochs 1 "
                                      "--batch 15 --dim 16 --depth 1 --heads 1 --mlp-dim 16 --patch 7 --threads 1 --out " +
                          dir + "/run",
                      dir + "/log");
  EXPECT_NE(code, 0);
  EXPECT_NE(slurp(dir + "/log").find("--batch 15 is the global batch; it must be divisible by the 2 processes"),
            std::string::npos)
      << slurp(dir + "/log");
}

namespace {

// Pid of the `mmkit` process of MPI rank `rank` whose command line contains `tag`, or -1.
pid_t rank_pid(const std::string& tag, int rank) {
  FILE* p = popen(("pgrep -f -- '" + tag + "'").c_str(), "r");
  if (!p) return -1;
  pid_t found = -1;
  int pid;
  while (std::fscanf(p, "%d", &pid) == 1) {
    std::string env = slurp("/proc/" + std::to_string(pid) + "/environ");
    std::string exe;
    char buf[4096];
    ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
    if (n > 0) exe.assign(buf, size_t(n));
    if (exe.find("mmkit") == std::string::npos) continue;  // mpirun itself, the shell
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos) found = pid;
  }
  pclose(p);
  return found;
}

}  // namespace

// A rank killed mid-run ends the job within 60 s with a message naming the
// rank; resuming from the last checkpoint (with 2 processes, or with 1: the
// global batch is unchanged) gives the loss curve of the uninterrupted run.
TEST_F(DistTrain, KilledRankEndsTheJobAndTheRunResumes) {
  const std::string dir = test::make_temp_dir("dist_kill");
  const std::string args = "train vit --data fashion-mnist --limit-train 3200 --limit-test 64 --epochs 1 --batch 32 "
                           "--dim 32 --depth 2 --heads 2 --mlp-dim 64 --patch 7 --seed 9 --threads 1 --checkpoint-every 5";
  ASSERT_EQ(sh(mpirun(2, "") + args + " --out " + dir + "/full", dir + "/full.log"), 0) << slurp(dir + "/full.log");
  const std::vector<double> want = step_losses(dir + "/full");
  ASSERT_EQ(want.size(), 100u);

  const std::string run = dir + "/killed";
  const std::string cmd = mpirun(2, "") + args + " --out " + run + " > " + dir + "/killed.log 2>&1";
  pid_t job = fork();
  if (job == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first checkpoint, then kill rank 1.
  for (int i = 0; i < 1200 && !test::file_exists(run + "/checkpoint.safetensors"); ++i) usleep(25000);
  ASSERT_TRUE(test::file_exists(run + "/checkpoint.safetensors")) << slurp(dir + "/killed.log");
  const pid_t victim = rank_pid(run, 1);
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  const auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  ASSERT_EQ(waitpid(job, &st, 0), job);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 60.0) << "the job outlived its killed rank";
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  const std::string log = slurp(dir + "/killed.log");
  EXPECT_NE(log.find("rank 1"), std::string::npos) << log;
  const std::vector<double> partial = step_losses(run);
  ASSERT_LT(partial.size(), want.size()) << "the run finished before the kill";

  // Resume with one process: the same global batches, so the same curve.
  ASSERT_EQ(sh(std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " --out " + run + " --resume", dir + "/resume.log"), 0)
      << slurp(dir + "/resume.log");
  const std::vector<double> got = step_losses(run);
  ASSERT_EQ(got.size(), want.size()) << slurp(run + "/losses.tsv");
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_LE(std::fabs(got[i] - want[i]), 1e-5 * std::fabs(want[i])) << "step " << i;
}
