// CLIP training throughput (issue #4 acceptance 3; issue #22 acceptance 3: bf16 mixed precision):
// a ViT-B/32-sized CLIP at batch 32, mmkit fp32 and bf16 vs PyTorch fp32 and
// PyTorch bf16 autocast, side by side in one run, with the machine's f32 and
// bf16 GEMM peaks measured in the same run.
//
//   build/clip_train_bench [--threads 2] [--batch 32] [--steps 3] [--warmup 1] [--words 20] [--no-torch]
//                          [--best-peer-only] [--precision fp32|bf16|both]
//
// A step is what `mmkit train clip` does per batch (train::clip_train_step):
// both towers forward, the symmetric contrastive loss, backward, gradient
// clipping, AdamW, temperature clamp - on random pixels and random token rows
// (start token, --words random ids, end token), as bench/torch_clip_train.py does.
// mmkit's text tower stops at the batch's last end-of-text token (exact under
// the causal mask, see clip_encode_text); PyTorch runs all 77 positions.
// --words 75 fills the context, so both run the full text tower.
// The PyTorch peers run at their best here (OMP_WAIT_POLICY=passive, OpenBLAS
// free to pick its AVX-512 kernels), in fp32 and with
// torch.autocast("cpu", dtype=torch.bfloat16); without --best-peer-only also
// with Debian's default threading (slow).
// Both mmkit runs start from the same seeded weights and see the same batch,
// so their step losses are printed side by side.
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
#include "mmkit/ops/gemm_bf16.h"
#include "mmkit/train/clip_trainer.h"

using namespace mmkit;

struct Stats {
  double min_ms = 0, median_ms = 0;
  double cpu_ms = 0;  // median CPU time (user + system, all threads) per step: robust to other load
  std::vector<float> losses;
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

static Stats run_mmkit(Precision precision, int batch, int warmup, int steps, int words) {
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
  g.precision = precision;
  std::vector<double> ms, cpu, losses;
  Stats r;
  for (int s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = cpu_ms_now();
    const long f0 = minor_faults_now();
    float loss = train::clip_train_step(g, clip, opt, x, ids, 1e-5f, 1.0f);
    double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    double dc = cpu_ms_now() - c0;
    // Page faults show memory that is freed and touched again every step
    // (after the first steps the arena is one block and nothing should fault).
    std::fprintf(stderr, "mmkit %s step %d: %.0f ms (CPU %.0f ms), loss %.4f, %ld page faults\n",
                 precision_name(precision), s, dt, dc, loss, minor_faults_now() - f0);
    r.losses.push_back(loss);
    if (s >= warmup) {
      ms.push_back(dt);
      cpu.push_back(dc);
    }
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  std::fprintf(stderr, "mmkit %s arena: %.1f MB peak\n", precision_name(precision), arena.peak() / 1e6);
  r.min_ms = ms.front();
  r.median_ms = ms[ms.size() / 2];
  r.cpu_ms = cpu[cpu.size() / 2];
  return r;
}

static bool run_torch(const std::string& env, const std::string& extra, int threads, int batch, int warmup, int steps, int words, Stats* out) {
  std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u MMKIT_KEEP_OMP_ENV " + env + " /usr/bin/python3 " +
                    MMKIT_SOURCE_DIR_STR + "/bench/torch_clip_train.py --threads " + std::to_string(threads) +
                    " --batch " + std::to_string(batch) + " --steps " + std::to_string(steps) + " --warmup " +
                    std::to_string(warmup) + " --words " + std::to_string(words) + " " + extra + " 2>/dev/null";
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

// GEMM peaks with the current thread count, as training runs them (ops::gemm, ops::gemm_bf16 on
// operands already in bf16): the best GFLOP/s of ViT-B/32's forward shapes at batch 32
// (M = 1600 tokens; N x K = 2304 x 768, 3072 x 768, 768 x 3072), each timed >= 0.3 s.
struct Peaks {
  double f32 = 0, bf16 = 0;
};

static Peaks measure_peaks() {
  struct Shape3 {
    int64_t M, N, K;
  } shapes[] = {{1600, 2304, 768}, {1600, 3072, 768}, {1600, 768, 3072}};
  Peaks p;
  Rng rng(7);
  for (const auto& s : shapes) {
    std::vector<float> a(size_t(s.M * s.K)), b(size_t(s.N * s.K)), c(size_t(s.M * s.N));
    for (auto& v : a) v = rng.normal();
    for (auto& v : b) v = rng.normal();
    std::vector<uint16_t> ah(a.size()), bh(b.size());
    ops::f32_to_bf16(a.data(), ah.data(), int64_t(a.size()));
    ops::f32_to_bf16(b.data(), bh.data(), int64_t(b.size()));
    const double flop = 2.0 * s.M * s.N * s.K;
    auto time_best = [&](auto&& fn) {
      fn();  // first call: primitive creation, page faults
      double best = 1e30, total = 0;
      while (total < 0.3) {
        auto t0 = std::chrono::steady_clock::now();
        fn();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, dt);
        total += dt;
      }
      return flop / best / 1e9;
    };
    p.f32 = std::max(p.f32, time_best([&] {
      ops::gemm(false, true, s.M, s.N, s.K, 1.f, a.data(), s.K, b.data(), s.K, 0.f, c.data(), s.N);
    }));
    p.bf16 = std::max(p.bf16, time_best([&] {
      ops::gemm_bf16(false, true, s.M, s.N, s.K, 1.f, ah.data(), s.K, bh.data(), s.K, 0.f, c.data(), s.N);
    }));
  }
  return p;
}

static void load_line(const char* when) {
  double l[3] = {0, 0, 0};
  if (getloadavg(l, 3) == 3) std::printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(int argc, char** argv) {
  mmkit::apply_default_wait_policy(argc, argv);
  int threads = 2, steps = 3, warmup = 1, batch = 32, words = 20;
  bool torch = true, best_only = false;  // --best-peer-only: skip Debian's default threading (slow)
  std::string precision = "both";
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
    else if (a == "--precision" && i + 1 < argc) precision = argv[++i];
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (steps < 1 || batch < 2 || words < 1 || words > 75 ||
      (precision != "both" && precision != "fp32" && precision != "bf16")) {
    std::fprintf(stderr, "--steps must be >= 1, --batch >= 2, --words in [1, 75], --precision fp32, bf16 or both\n");
    return 2;
  }
  set_num_threads(threads);
  std::printf("CLIP ViT-B/32 training step (batch %d, %d threads, %d timed steps after %d warm-up, captions of %d "
              "tokens in a context of 77, GEMM: %s)\n",
              batch, threads, steps, warmup, words + 2, ops::gemm_backend_name());
  load_line("at start");
  const Peaks pk = measure_peaks();
  std::printf("GEMM peak, %d thread(s), M=1600: f32 %.0f GFLOP/s, bf16 %.0f GFLOP/s (%s): bf16/f32 %.2fx\n", threads,
              pk.f32, pk.bf16, ops::gemm_bf16_backend_name().c_str(), pk.bf16 / pk.f32);
  std::printf("(CPU = user + system time of all threads per step; on a busy machine compare CPU time)\n");
  std::vector<std::pair<std::string, Stats>> rows;
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    if (precision != "both" && precision != precision_name(p)) continue;
    Stats m = run_mmkit(p, batch, warmup, steps, words);
    rows.push_back({std::string("mmkit ") + precision_name(p), m});
    std::printf("%-42s min %8.0f ms  median %8.0f ms  CPU %8.0f ms  %6.2f pairs/s\n", rows.back().first.c_str(),
                m.min_ms, m.median_ms, m.cpu_ms, batch * 1000.0 / m.median_ms);
  }
  if (rows.size() == 2) {
    const Stats &f = rows[0].second, &b = rows[1].second;
    std::printf("mmkit bf16 vs mmkit fp32: x%.2f (wall), x%.2f (CPU); GEMM peak ratio x%.2f\n",
                f.median_ms / b.median_ms, f.cpu_ms / b.cpu_ms, pk.bf16 / pk.f32);
    std::printf("step losses fp32 / bf16:");
    for (size_t k = 0; k < f.losses.size() && k < b.losses.size(); ++k)
      std::printf(" %.4f/%.4f", f.losses[k], b.losses[k]);
    std::printf("\n");
  }
  if (torch) {
    struct Peer {
      const char* name;
      const char* env;
      const char* extra;
      bool best;
    } peers[] = {{"pytorch fp32 (default threading)", "", "", false},
                 {"pytorch fp32 (passive, OpenBLAS autodetect)",
                  "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive", "", true},
                 {"pytorch autocast bf16 (passive)",
                  "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive", "--autocast", true}};
    double best_torch = 0, best_torch_cpu = 0;
    for (auto& p : peers) {
      if (best_only && !p.best) continue;
      Stats t;
      if (!run_torch(p.env, p.extra, threads, batch, warmup, steps, words, &t)) {
        std::printf("%-42s failed to run (is python3-torch installed?)\n", p.name);
        continue;
      }
      std::printf("%-42s min %8.0f ms  median %8.0f ms  CPU %8.0f ms  %6.2f pairs/s  ", p.name, t.min_ms, t.median_ms,
                  t.cpu_ms, batch * 1000.0 / t.median_ms);
      for (auto& [name, m] : rows)
        std::printf(" %s x%.2f (wall) x%.2f (CPU)", name.c_str(), t.median_ms / m.median_ms, t.cpu_ms / m.cpu_ms);
      std::printf("\n");
      if (best_torch == 0 || t.median_ms < best_torch) best_torch = t.median_ms;
      if (best_torch_cpu == 0 || t.cpu_ms < best_torch_cpu) best_torch_cpu = t.cpu_ms;
    }
    if (best_torch > 0)
      for (auto& [name, m] : rows)
        std::printf("%s vs PyTorch's best: x%.2f (wall), x%.2f (CPU)\n", name.c_str(), best_torch / m.median_ms,
                    best_torch_cpu / m.cpu_ms);
  }
  load_line("at end");
  return 0;
}
