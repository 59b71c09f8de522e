// Data-parallel scaling of CLIP training (issue #17, acceptance 3): a
// ViT-B/32-sized CLIP, one process x 1 thread at batch B against `mpirun -np
// 2` x 1 thread each at global batch 2B, side by side in one run.
//
//   build/dist_train_bench [--batch-per-rank 8] [--steps 3] [--warmup 1] [--words 20] [--ranks 2]
//   mpirun -np 2 build/dist_train_bench --worker --allreduce-mb 605 [--mca btl tcp,self before the program]
//                                        (all-reduce bandwidth alone: ViT-B/32 CLIP's gradients are 605 MB)
//
// A step is the training loop's data-parallel step (train/train_loop.cpp):
// both towers forward on the rank's rows, CLIP's loss over the global batch
// (ag::clip_contrastive_loss_gathered: features all-gathered, gradients of
// the gathered rows summed back), backward, the gradients summed over the
// ranks in buckets (train::allreduce_gradients), clipping, AdamW,
// temperature clamp - on random pixels and token rows. It reports pairs per
// second, the ratio to one process, and the share of the step in the
// gradient all-reduce. The driver starts the N-rank half itself with
// mpirun (--worker mode) and reads its result line; then N independent
// single processes at once, with no communication, give the ceiling that
// the cores themselves allow.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/models/clip.h"
#include "mmkit/train/train_loop.h"

using namespace mmkit;

namespace {

struct Result {
  int ranks = 1, batch = 0;
  double step_s = 0, comm_s = 0;  // medians per step
  double pairs_per_s() const { return step_s > 0 ? batch / step_s : 0; }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Runs warmup + steps data-parallel steps on this process's rows.
Result run(int rows, int warmup, int steps, int words) {
  dist::Communicator& comm = dist::world();
  set_num_threads(1);
  Clip clip;
  clip.init(ClipConfig{}, 0);  // ClipConfig's defaults are OpenAI's ViT-B/32
  AdamWConfig ac;
  ac.lr = 1e-5f;
  ac.weight_decay = 0.1f;
  nn::ParamList params = clip.parameters();
  AdamW opt(params, ac);
  const int64_t R = clip.cfg.image_resolution, T = clip.cfg.context_length;
  Tensor x = Tensor::empty(Shape{rows, 3, R, R});
  Tensor ids = Tensor::zeros(Shape{rows, T}, DType::i32);
  Rng rng(uint64_t(comm.rank()) + 1);
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = float(rng.uniform()) * 2 - 1;
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* row = ids.ptr<int32_t>() + r * T;
    row[0] = int32_t(clip.cfg.vocab_size - 2);  // start of text
    for (int w = 1; w <= words; ++w) row[w] = int32_t(rng.next_u64() % uint64_t(clip.cfg.vocab_size - 2));
    row[words + 1] = int32_t(clip.cfg.vocab_size - 1);  // end of text: the largest id
  }
  Arena arena;
  Graph g(arena);
  g.training = true;
  std::vector<float> bucket;
  std::vector<double> step_s, comm_s;
  for (int s = 0; s < warmup + steps; ++s) {
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    double c = 0;
    g.reset();
    Var img = clip_encode_image(g, clip, g.constant(x));
    Var txt = clip_encode_text(g, clip, ids);
    Var scale = g.param(clip.logit_scale);
    Var loss = comm.size() > 1 ? ag::clip_contrastive_loss_gathered(g, img, txt, scale, comm)
                               : ag::clip_contrastive_loss(g, img, txt, scale);
    g.backward(loss);
    if (comm.size() > 1) train::allreduce_gradients(comm, params, 1.f / float(comm.size()), &bucket, &c);
    opt.step(1e-5f, clip_scale(grad_norm(params), 1.f), /*zero_grads=*/true);
    float& t = clip.logit_scale.value.f32()[0];
    t = std::min(std::max(t, 0.f), std::log(100.f));
    if (s >= warmup) {
      step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      comm_s.push_back(c);
    }
  }
  Result r;
  r.ranks = comm.size();
  r.batch = rows * comm.size();
  r.step_s = median(step_s);
  r.comm_s = median(comm_s);
  return r;
}

// The "RESULT ..." line a --worker prints, from its output.
Result read_result(FILE* p) {
  Result r;
  char line[512];
  while (std::fgets(line, sizeof line, p))
    if (std::sscanf(line, "RESULT ranks=%d batch=%d step_s=%lf comm_s=%lf", &r.ranks, &r.batch, &r.step_s,
                    &r.comm_s) == 4)
      break;
  return r;
}

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return std::atoi(argv[i + 1]);
  return def;
}

bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], name)) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int rows = arg(argc, argv, "--batch-per-rank", 8), steps = arg(argc, argv, "--steps", 3);
  const int warmup = arg(argc, argv, "--warmup", 1), words = arg(argc, argv, "--words", 20);
  const int ranks = arg(argc, argv, "--ranks", 2);
  if (flag(argc, argv, "--worker") && arg(argc, argv, "--allreduce-mb", 0) > 0) {
    // Bus bandwidth as NCCL-tests define it for all-reduce: bytes x 2(N-1)/N / time.
    dist::Communicator& comm = dist::world();
    const int64_t n = int64_t(arg(argc, argv, "--allreduce-mb", 0)) * (1 << 20) / 4;
    std::vector<float> buf(size_t(n), 1.f);
    std::vector<double> t;
    for (int i = 0; i < 4; ++i) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.allreduce_sum(buf.data(), n);
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    t.erase(t.begin());  // the first touches the pages
    const double s = median(t), bytes = double(n) * 4, N = comm.size();
    if (comm.rank() == 0)
      std::printf("all-reduce of %.0f MB over %d ranks: median %.3f s, algorithm bandwidth %.2f GB/s, bus bandwidth "
                  "%.2f GB/s\n",
                  bytes / (1 << 20), comm.size(), s, bytes / s / 1e9, bytes * 2 * (N - 1) / N / s / 1e9);
    return 0;
  }
  if (flag(argc, argv, "--worker")) {
    Result r = run(rows, warmup, steps, words);
    if (dist::world().rank() == 0)
      std::printf("RESULT ranks=%d batch=%d step_s=%.6f comm_s=%.6f\n", r.ranks, r.batch, r.step_s, r.comm_s);
    return 0;
  }
  if (!dist::built_with_mpi()) {
    std::fprintf(stderr, "dist_train_bench: this build has no MPI (install libopenmpi-dev and rebuild)\n");
    return 1;
  }
  double load[3] = {0, 0, 0};
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
    std::fclose(f);
  }
  std::printf("CLIP ViT-B/32 training step, %d rows per process, 1 thread per process, %d+%d steps, "
              "load average %.2f before the run\n",
              rows, warmup, steps, load[0]);
  const Result one = run(rows, warmup, steps, words);
  std::printf("%-28s batch %4d  step %7.3f s  %7.2f pairs/s\n", "1 process", one.batch, one.step_s,
              one.pairs_per_s());
  std::fflush(stdout);
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = 0;
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " " + self +
                          " --worker --batch-per-rank " + std::to_string(rows) + " --steps " + std::to_string(steps) +
                          " --warmup " + std::to_string(warmup) + " --words " + std::to_string(words);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 1;
  const Result many = read_result(p);
  if (pclose(p) != 0 || many.step_s <= 0) {
    std::fprintf(stderr, "dist_train_bench: the mpirun half failed: %s\n", cmd.c_str());
    return 1;
  }
  std::printf("%-28s batch %4d  step %7.3f s  %7.2f pairs/s  (gradient all-reduce %.3f s = %.1f%% of the step)\n",
              (std::to_string(many.ranks) + " processes (mpirun)").c_str(), many.batch, many.step_s,
              many.pairs_per_s(), many.comm_s, 100 * many.comm_s / many.step_s);
  std::printf("speed-up: %.2fx the pairs per second of one process\n", many.pairs_per_s() / one.pairs_per_s());
  std::fflush(stdout);
  // The hardware's ceiling for this speed-up: the same number of single processes at batch B at
  // once, with no communication at all (cores share the memory bus, caches and the power budget,
  // so N busy cores do not step as fast as one).
  const std::string solo = std::string(self) + " --worker --batch-per-rank " + std::to_string(rows) + " --steps " +
                           std::to_string(steps) + " --warmup " + std::to_string(warmup) + " --words " +
                           std::to_string(words);
  std::vector<FILE*> solos;
  for (int i = 0; i < ranks; ++i)
    if (FILE* q = popen(solo.c_str(), "r")) solos.push_back(q);
  double ceiling = 0, slowest = 0;
  bool ok = int(solos.size()) == ranks;
  for (FILE* q : solos) {
    const Result r = read_result(q);
    ok = pclose(q) == 0 && r.step_s > 0 && ok;
    ceiling += r.pairs_per_s();
    slowest = std::max(slowest, r.step_s);
  }
  if (!ok) {
    std::fprintf(stderr, "dist_train_bench: the independent processes failed: %s\n", solo.c_str());
    return 1;
  }
  std::printf("%-28s batch %4d  step %7.3f s  %7.2f pairs/s  (no communication: the hardware's ceiling)\n",
              (std::to_string(ranks) + " independent processes").c_str(), rows * ranks, slowest, ceiling);
  std::printf("ceiling: %.2fx; data-parallel reaches %.1f%% of it\n", ceiling / one.pairs_per_s(),
              100 * many.pairs_per_s() / ceiling);
  return 0;
}
