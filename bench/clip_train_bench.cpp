// CLIP training throughput (issue #4, acceptance 3): a ViT-B/32-sized CLIP at
// batch 32, mmkit vs PyTorch side by side in one run.
//
//   build/clip_train_bench [--threads 2] [--batch 32] [--steps 3] [--warmup 1] [--words 20] [--no-torch]
//                          [--best-peer-only]
//
// A step is what `mmkit train clip` does per batch (train::clip_train_step):
// both towers forward, the symmetric contrastive loss, backward, gradient
// clipping, AdamW, temperature clamp - on random pixels and random token rows
// (start token, --words random ids, end token), as bench/torch_clip_train.py does.
// mmkit's text tower stops at the batch's last end-of-text token (exact under
// the causal mask, see clip_encode_text); PyTorch runs all 77 positions.
// --words 75 fills the context, so both run the full text tower.
// The PyTorch peer runs with Debian's default threading and at its best here
// (OMP_WAIT_POLICY=passive, OpenBLAS free to pick its AVX-512 kernels).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mmkit/core/parallel.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/train/clip_trainer.h"

using namespace mmkit;

struct Stats {
  double min_ms = 0, median_ms = 0;
  double cpu_ms = 0;  // median CPU time (user + system, all threads) per step: robust to other load
};

static long minor_faults_now() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static double cpu_ms_now() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static ClipConfig vit_b32() {
  ClipConfig c;  // the defaults are OpenAI's ViT-B/32
  return c;
}

static Stats run_mmkit(int batch, int warmup, int steps, int words) {
  Clip clip;
  clip.init(vit_b32(), 0);
  AdamWConfig ac;
  ac.lr = 1e-5f;
  ac.weight_decay = 0.1f;
  AdamW opt(clip.parameters(), ac);
  Rng rng(1);
  const int64_t R = 224, T = 77, V = 49408;
  Tensor x = Tensor::empty(Shape{batch, 3, R, R});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
  Tensor ids = Tensor::zeros(Shape{batch, T}, DType::i32);
  for (int b = 0; b < batch; ++b) {
    int32_t* r = ids.ptr<int32_t>() + b * T;
    r[0] = int32_t(V - 2);
    for (int k = 1; k <= words; ++k) r[k] = int32_t(1 + rng.randint(uint64_t(V - 3)));
    r[words + 1] = int32_t(V - 1);
  }
  Arena arena;
  Graph g(arena);
  g.training = true;
  std::vector<double> ms, cpu;
  for (int s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = cpu_ms_now();
    const long f0 = minor_faults_now();
    float loss = train::clip_train_step(g, clip, opt, x, ids, 1e-5f, 1.0f);
    double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    double dc = cpu_ms_now() - c0;
    // Page faults show memory that is freed and touched again every step
    // (after the first steps the arena is one block and nothing should fault).
    std::fprintf(stderr, "mmkit step %d: %.0f ms (CPU %.0f ms), loss %.4f, %ld page faults\n", s, dt, dc, loss,
                 minor_faults_now() - f0);
    if (s >= warmup) {
      ms.push_back(dt);
      cpu.push_back(dc);
    }
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  std::fprintf(stderr, "mmkit arena: %.1f MB peak\n", arena.peak() / 1e6);
  return {ms.front(), ms[ms.size() / 2], cpu[cpu.size() / 2]};
}

static bool run_torch(const std::string& env, int threads, int batch, int warmup, int steps, int words, Stats* out) {
  std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u MMKIT_KEEP_OMP_ENV " + env + " /usr/bin/python3 " +
                    MMKIT_SOURCE_DIR_STR + "/bench/torch_clip_train.py --threads " + std::to_string(threads) +
                    " --batch " + std::to_string(batch) + " --steps " + std::to_string(steps) + " --warmup " +
                    std::to_string(warmup) + " --words " + std::to_string(words) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[4096];
  bool ok = false;
  while (std::fgets(line, sizeof line, p)) {
    const char* a = std::strstr(line, "\"step_ms_min\":");
    const char* b = std::strstr(line, "\"step_ms_median\":");
    const char* c = std::strstr(line, "\"cpu_ms_median\":");
    if (a && b && c) {
      out->min_ms = std::atof(a + 14);
      out->median_ms = std::atof(b + 17);
      out->cpu_ms = std::atof(c + 16);
      ok = true;
    }
  }
  return pclose(p) == 0 && ok;
}

int main(int argc, char** argv) {
  mmkit::apply_default_wait_policy(argc, argv);
  int threads = 2, steps = 3, warmup = 1, batch = 32, words = 20;
  bool torch = true, best_only = false;  // --best-peer-only: skip Debian's default threading (slow)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--threads") threads = next();
    else if (a == "--steps") steps = next();
    else if (a == "--warmup") warmup = next();
    else if (a == "--batch") batch = next();
    else if (a == "--words") words = next();
    else if (a == "--no-torch") torch = false;
    else if (a == "--best-peer-only") best_only = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (steps < 1 || batch < 2 || words < 1 || words > 75) {
    std::fprintf(stderr, "--steps must be >= 1, --batch >= 2 and --words in [1, 75]\n");
    return 2;
  }
  set_num_threads(threads);
  std::printf("CLIP ViT-B/32 training step (batch %d, %d threads, %d timed steps after %d warm-up, captions of %d "
              "tokens in a context of 77, GEMM: %s)\n",
              batch, threads, steps, warmup, words + 2, ops::gemm_backend_name());
  Stats m = run_mmkit(batch, warmup, steps, words);
  std::printf("(CPU = user + system time of all threads per step; on a busy machine compare CPU time)\n");
  std::printf("%-42s min %8.0f ms  median %8.0f ms  CPU %8.0f ms  %6.2f pairs/s\n", "mmkit", m.min_ms,
              m.median_ms, m.cpu_ms, batch * 1000.0 / m.median_ms);
  if (!torch) return 0;
  struct Peer {
    const char* name;
    const char* env;
  } peers[] = {{"pytorch (default threading)", ""},
               {"pytorch (passive, OpenBLAS autodetect)",
                "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive"}};
  for (auto& p : peers) {
    if (best_only && p.env[0] == '\0') continue;
    Stats t;
    if (!run_torch(p.env, threads, batch, warmup, steps, words, &t)) {
      std::printf("%-42s failed to run (is python3-torch installed?)\n", p.name);
      continue;
    }
    std::printf("%-42s min %8.0f ms  median %8.0f ms  CPU %8.0f ms  %6.2f pairs/s   mmkit speed-up x%.2f (wall), x%.2f (CPU)\n",
                p.name, t.min_ms, t.median_ms, t.cpu_ms, batch * 1000.0 / t.median_ms, t.median_ms / m.median_ms,
                t.cpu_ms / m.cpu_ms);
  }
  return 0;
}
