// gemm_bench: times fp32 row-major GEMM in oneDNN (dnnl_sgemm) and OpenBLAS (cblas_sgemm) side by side
// on the products the tiny-ViT training step performs, plus large squares, at 1 and 2 threads.
// It links both libraries, so it lives outside bench/ (CMake builds bench/*.cpp against mmkit only).
//
// Build and run (from the repo root):
//   g++ -O3 -march=native -fopenmp -std=c++17 tools/gemm_bench/gemm_bench.cpp -o /tmp/gemm_bench -I/usr/include/x86_64-linux-gnu/openblas-openmp -ldnnl -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas
//   /tmp/gemm_bench [--quick] [--threads 1,2]
// Keep OPENBLAS_CORETYPE as the environment sets it (Haswell here); the header line reports it. With it,
// OpenBLAS runs its AVX2 kernels at about half oneDNN's AVX-512 speed; unset, it picks Cooperlake and matches.
// Run on an idle machine: with another process on a core, a 2-thread call waits a scheduler slice (~8 ms)
// at its barrier, which shows as both libraries collapsing to the same low GFLOP/s.
//
// Shapes. Tiny ViT: 28x28 image, patch 4 -> T = 50 tokens, D = 64, 4 heads of 16, MLP 256, batch 128,
// so a linear layer sees M = 128*50 = 6400 rows. A linear y = x W^T (x [M,in], W [out,in]) costs:
//   forward   y  = x  W^T   NT  M=6400 N=out K=in
//   backward  dx = dy W     NN  M=6400 N=in  K=out
//   backward  dW = dy^T x   TN  M=out  N=in  K=6400
// for (in,out) in qkv (64,192), attn-out (64,64), fc1 (64,256), fc2 (256,64).
// Attention per (image, head), 128*4 = 512 of them: S = Q K^T (NT 50x50x16; also dP = dO V^T),
// O = P V (NN 50x16x50; also dQ = dS K), dV = P^T dO (TN 50x16x50; also dK = dS^T Q). Batched two ways:
//   loop: 512 sequential calls, each library call free to use all threads;
//   omp:  an OpenMP parallel-for over the 512, each call single-threaded (both libraries detect
//         omp_in_parallel() and run sequentially inside it).
// GFLOP/s = 2*M*N*K*batch / time; "best" from the fastest repetition, "med" from the median.
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
// OpenBLAS extensions (declared in its cblas.h on most builds; repeated here for older headers).
void openblas_set_num_threads(int);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace {

struct Case {
  const char* name;
  char ta, tb;  // 'N' or 'T', row-major semantics: op(A) is [M,K], op(B) is [K,N]
  int64_t M, N, K;
  int batch;        // independent products with distinct A/B/C
  bool omp_batch;   // batch split across threads (each call single-threaded) vs sequential calls
};

struct Buffers {
  std::vector<float> a, b, c;
};

enum class Lib { dnnl, openblas };

void gemm(Lib lib, const Case& k, const float* A, const float* B, float* C) {
  const int64_t lda = k.ta == 'N' ? k.K : k.M;
  const int64_t ldb = k.tb == 'N' ? k.N : k.K;
  if (lib == Lib::dnnl) {
    dnnl_status_t st = dnnl_sgemm(k.ta, k.tb, k.M, k.N, k.K, 1.f, A, lda, B, ldb, 0.f, C, k.N);
    if (st != dnnl_success) {
      std::fprintf(stderr, "dnnl_sgemm failed (status %d) for %s\n", int(st), k.name);
      std::exit(1);
    }
  } else {
    cblas_sgemm(CblasRowMajor, k.ta == 'N' ? CblasNoTrans : CblasTrans, k.tb == 'N' ? CblasNoTrans : CblasTrans,
                int(k.M), int(k.N), int(k.K), 1.f, A, int(lda), B, int(ldb), 0.f, C, int(k.N));
  }
}

void run_batch(Lib lib, const Case& k, Buffers& buf) {
  const size_t sa = size_t(k.M * k.K), sb = size_t(k.K * k.N), sc = size_t(k.M * k.N);
  if (k.batch == 1) {
    gemm(lib, k, buf.a.data(), buf.b.data(), buf.c.data());
  } else if (k.omp_batch) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < k.batch; ++i) gemm(lib, k, buf.a.data() + i * sa, buf.b.data() + i * sb, buf.c.data() + i * sc);
  } else {
    for (int i = 0; i < k.batch; ++i) gemm(lib, k, buf.a.data() + i * sa, buf.b.data() + i * sb, buf.c.data() + i * sc);
  }
}

struct Timing {
  double best_s, median_s;
  int reps;
};

// Repeats until min_total seconds have passed and at least min_reps runs (capped at max_reps).
Timing time_it(Lib lib, const Case& k, Buffers& buf, double min_total, int min_reps, int max_reps) {
  run_batch(lib, k, buf);  // warm-up: oneDNN JIT, OpenBLAS buffer allocation, page faults
  std::vector<double> t;
  double total = 0;
  while ((total < min_total || int(t.size()) < min_reps) && int(t.size()) < max_reps) {
    auto t0 = std::chrono::steady_clock::now();
    run_batch(lib, k, buf);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.push_back(dt);
    total += dt;
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], int(t.size())};
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::vector<int> threads = {1, 2};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = parse_list(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--threads 1,2]\n", argv[0]);
      return 2;
    }
  }

  const int64_t M = 128 * 50;  // tokens in a batch of 128 tiny-ViT images
  const int AB = 128 * 4;      // (image, head) pairs
  std::vector<Case> cases = {
      {"qkv fwd  x W^T", 'N', 'T', M, 192, 64, 1, false},
      {"qkv dx   dy W", 'N', 'N', M, 64, 192, 1, false},
      {"qkv dW   dy^T x", 'T', 'N', 192, 64, M, 1, false},
      {"proj fwd x W^T", 'N', 'T', M, 64, 64, 1, false},
      {"proj dx  dy W", 'N', 'N', M, 64, 64, 1, false},
      {"proj dW  dy^T x", 'T', 'N', 64, 64, M, 1, false},
      {"fc1 fwd  x W^T", 'N', 'T', M, 256, 64, 1, false},
      {"fc1 dx   dy W", 'N', 'N', M, 64, 256, 1, false},
      {"fc1 dW   dy^T x", 'T', 'N', 256, 64, M, 1, false},
      {"fc2 fwd  x W^T", 'N', 'T', M, 64, 256, 1, false},
      {"fc2 dx   dy W", 'N', 'N', M, 256, 64, 1, false},
      {"fc2 dW   dy^T x", 'T', 'N', 64, 256, M, 1, false},
      {"att QK^T loop", 'N', 'T', 50, 50, 16, AB, false},
      {"att QK^T omp", 'N', 'T', 50, 50, 16, AB, true},
      {"att PV   loop", 'N', 'N', 50, 16, 50, AB, false},
      {"att PV   omp", 'N', 'N', 50, 16, 50, AB, true},
      {"att P^TdO loop", 'T', 'N', 50, 16, 50, AB, false},
      {"att P^TdO omp", 'T', 'N', 50, 16, 50, AB, true},
      {"square NN", 'N', 'N', 1024, 1024, 1024, 1, false},
      {"square NT", 'N', 'T', 1024, 1024, 1024, 1, false},
      {"vitb fwd NT", 'N', 'T', 4096, 768, 768, 1, false},
      {"vitb dx  NN", 'N', 'N', 4096, 768, 768, 1, false},
      {"vitb dW  TN", 'T', 'N', 768, 768, 4096, 1, false},
  };

  const char* core = std::getenv("OPENBLAS_CORETYPE");
  const dnnl_version_t* dv = dnnl_version();
  std::printf("# OPENBLAS_CORETYPE=%s  openblas: %s (core %s)\n", core ? core : "(unset)", openblas_get_config(),
              openblas_get_corename());
  std::printf("# oneDNN %d.%d.%d, effective ISA %d, omp_get_num_procs %d\n", dv->major, dv->minor, dv->patch,
              int(dnnl_get_effective_cpu_isa()), omp_get_num_procs());
  std::printf("# GFLOP/s, best (fastest rep) / median; ratio = dnnl med GFLOP/s / openblas med GFLOP/s (>1: oneDNN faster)\n");
  std::printf("%-16s %2s %5s %5s %5s %5s %3s | %8s %8s | %8s %8s | %6s %9s\n", "case", "op", "M", "N", "K", "batch",
              "thr", "dnnl.bst", "dnnl.med", "oblas.bst", "oblas.med", "ratio", "maxrel");

  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  for (int nt : threads) {
    omp_set_num_threads(nt);
    openblas_set_num_threads(nt);
    for (const Case& k : cases) {
      Buffers buf;
      buf.a.resize(size_t(k.M * k.K) * k.batch);
      buf.b.resize(size_t(k.K * k.N) * k.batch);
      buf.c.resize(size_t(k.M * k.N) * k.batch);
      for (float& x : buf.a) x = uni(rng);
      for (float& x : buf.b) x = uni(rng);

      // Cross-check the two libraries on this exact call (catches a wrong lda/transposition in either).
      run_batch(Lib::openblas, k, buf);
      std::vector<float> ref = buf.c;
      run_batch(Lib::dnnl, k, buf);
      double maxrel = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        maxrel = std::max(maxrel, std::fabs(double(buf.c[i]) - ref[i]) / (1.0 + std::fabs(double(ref[i]))));
      if (maxrel > 1e-3) {
        std::fprintf(stderr, "%s: dnnl and openblas disagree (max rel %.3g)\n", k.name, maxrel);
        return 1;
      }

      const double min_total = quick ? 0.05 : 0.4;
      Timing td = time_it(Lib::dnnl, k, buf, min_total, 5, 2000);
      Timing to = time_it(Lib::openblas, k, buf, min_total, 5, 2000);
      const double gflop = 2.0 * double(k.M) * double(k.N) * double(k.K) * k.batch * 1e-9;
      std::printf("%-16s %c%c %5lld %5lld %5lld %5d %3d | %8.1f %8.1f | %8.1f %8.1f | %6.2f %9.2e\n", k.name, k.ta,
                  k.tb, (long long)k.M, (long long)k.N, (long long)k.K, k.batch, nt, gflop / td.best_s,
                  gflop / td.median_s, gflop / to.best_s, gflop / to.median_s, to.median_s / td.median_s, maxrel);
      std::fflush(stdout);
    }
  }
  return 0;
}
