// Tiny-ViT training throughput, mmkit vs PyTorch, side by side in one run.
//
//   build/vit_train_bench [--threads 2] [--steps 30] [--warmup 5] [--batch 128]
// (--no-torch: one in-process mmkit measurement, used by the program itself)
//
// Model (issue #2, acceptance 3): image 28, patch 4, 1 channel, dim 64,
// depth 4, heads 4, MLP 256, 10 classes, post-norm, GELU, dropout 0; AdamW.
// A step = zero_grad + forward + cross-entropy + backward + AdamW, on random
// N(0,1) images and random labels (same as bench/torch_vit_train.py). The
// PyTorch peer runs three times: Debian's default threading, with
// OMP_WAIT_POLICY=passive, and passive with OpenBLAS free to pick its
// AVX-512 kernels (OPENBLAS_CORETYPE unset for that command only) - its best.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <string>
#include <vector>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/models/vit.h"
#include "mmkit/ops/gemm.h"

using namespace mmkit;

struct Stats {
  double min_ms, median_ms;
};

static Stats run_mmkit(int batch, int warmup, int steps) {
  VitConfig cfg;  // defaults are the benchmark architecture
  Vit vit;
  vit.init(cfg, 0);
  auto params = vit.parameters();
  AdamW opt(params, AdamWConfig{});
  Rng rng(1);
  Tensor x = Tensor::empty(Shape{batch, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
  Tensor y = Tensor::empty(Shape{batch}, DType::i32);
  for (int i = 0; i < batch; ++i) y.ptr<int32_t>()[i] = int32_t(rng.randint(10));
  Arena arena;
  Graph g(arena);
  g.training = true;
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    g.reset();
    opt.zero_grad();
    Var logits = vit_forward(g, vit, g.constant(x));
    Var loss = ag::cross_entropy(g, logits, y, 0.f);
    g.backward(loss);
    opt.step(1e-3f);
    auto t1 = std::chrono::steady_clock::now();
    if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::fprintf(stderr, "mmkit arena: %.1f MB peak, %zu chunk allocations\n", arena.peak() / 1e6,
               arena.heap_allocations());
  return {ms.front(), ms[ms.size() / 2]};
}

static bool run_torch(const std::string& env, int threads, int batch, int warmup, int steps,
                      Stats* out) {
  // The peer must not inherit mmkit's own OpenMP setting.
  std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u MMKIT_KEEP_OMP_ENV " + env +
                    " /usr/bin/python3 " + MMKIT_SOURCE_DIR_STR +
                    "/bench/torch_vit_train.py --threads " + std::to_string(threads) +
                    " --batch " + std::to_string(batch) + " --steps " + std::to_string(steps) +
                    " --warmup " + std::to_string(warmup);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[4096];
  bool ok = false;
  while (std::fgets(line, sizeof line, p)) {
    const char* a = std::strstr(line, "\"step_ms_min\":");
    const char* b = std::strstr(line, "\"step_ms_median\":");
    if (a && b) {
      out->min_ms = std::atof(a + 14);
      out->median_ms = std::atof(b + 17);
      ok = true;
    }
  }
  return pclose(p) == 0 && ok;
}

int main(int argc, char** argv) {
  mmkit::apply_default_wait_policy(argc, argv);
  int threads = 2, steps = 30, warmup = 5, batch = 128;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--threads") threads = next();
    else if (a == "--steps") steps = next();
    else if (a == "--warmup") warmup = next();
    else if (a == "--batch") batch = next();
    else if (a == "--no-torch") torch = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  set_num_threads(threads);
  if (!torch) {  // child mode: one mmkit measurement, machine-readable
    Stats m = run_mmkit(batch, warmup, steps);
    std::printf("MMKIT %.3f %.3f\n", m.min_ms, m.median_ms);
    return 0;
  }
  std::printf("tiny ViT training step (batch %d, %d threads, %d timed steps, GEMM: %s)\n", batch,
              threads, steps, ops::gemm_backend_name());
  // mmkit in two OpenMP settings, each in a fresh process (libgomp reads its
  // environment at start-up): its default (passive) and spinning.
  Stats m{0, 0};
  for (const char* env : {"OMP_WAIT_POLICY=passive", "GOMP_SPINCOUNT=3000000"}) {
    std::string cmd = std::string("env ") + env + " /proc/" + std::to_string(getpid()) +
                      "/exe --no-torch --threads " + std::to_string(threads) + " --batch " +
                      std::to_string(batch) + " --steps " + std::to_string(steps) + " --warmup " +
                      std::to_string(warmup) + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    Stats s{0, 0};
    char line[256];
    while (p && std::fgets(line, sizeof line, p))
      if (std::strncmp(line, "MMKIT ", 6) == 0) std::sscanf(line + 6, "%lf %lf", &s.min_ms, &s.median_ms);
    if (p) pclose(p);
    std::printf("%-40s min %7.1f ms  median %7.1f ms  %7.0f img/s\n",
                (std::string("mmkit (") + env + ")").c_str(), s.min_ms, s.median_ms,
                batch * 1000.0 / s.median_ms);
    if (m.median_ms == 0 || s.median_ms < m.median_ms) m = s;
  }
  std::printf("(ratios below use mmkit's faster setting, median %.1f ms)\n", m.median_ms);
  struct Peer {
    const char* name;
    const char* env;
  } peers[] = {{"pytorch (default threading)", ""},
               {"pytorch (OMP_WAIT_POLICY=passive)", "OMP_WAIT_POLICY=passive"},
               // Its best here: OpenBLAS may then pick its AVX-512 kernels (the
               // machine pins OPENBLAS_CORETYPE=Haswell for old OpenBLAS bugs).
               {"pytorch (passive, OpenBLAS autodetect)",
                "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive"}};
  for (auto& p : peers) {
    Stats t;
    if (!run_torch(p.env, threads, batch, warmup, steps, &t)) {
      std::printf("%-40s failed to run (is python3-torch installed?)\n", p.name);
      continue;
    }
    std::printf("%-40s min %7.1f ms  median %7.1f ms  %7.0f img/s   mmkit speed-up x%.2f\n",
                p.name, t.min_ms, t.median_ms, batch * 1000.0 / t.median_ms,
                t.median_ms / m.median_ms);
  }
  return 0;
}
