#include "mmkit/ops/linear.h"

#include <omp.h>

#include <cstddef>
#include <vector>

#include "mmkit/ops/gemm.h"
#include "mmkit/ops/gemm_bf16.h"

namespace mmkit::ops {

namespace {

// Few rows (one ViT-B/32 image = 50 tokens, a batch of 2-3): oneDNN's sgemm
// on x W^T splits the N rows across threads and each thread packs all of W,
// so with 2 threads it runs up to 2.4x slower than the transposed product
// W x^T, where the threads split W's rows instead (N=50, W 768x3072:
// 2.13 vs 0.88 ms; up to 6x on a loaded machine). From N ~200 the two are
// level and at N=1600 the direct product is ~12% faster; single-threaded
// they are level from N ~50. Measured on every ViT-B and CLIP-text shape,
// see docs/BENCHMARKS.md, CLIP section.
bool use_transposed(int64_t N) {
  return N >= 12 && N <= (omp_get_max_threads() > 1 ? 160 : 48);
}

// y[N,out] = (W[out,in] x[N,in]^T)^T + b, through a per-thread [out, N]
// scratch (at most 160 * out floats; thread-local so one model can serve
// requests from several threads).
void linear_forward_transposed(const float* x, const float* W, const float* b, float* y,
                               int64_t N, int64_t in, int64_t out) {
  thread_local std::vector<float> yt;
  if (yt.size() < std::size_t(out * N)) yt.resize(std::size_t(out * N));
  float* t = yt.data();
  gemm(false, true, out, N, in, 1.f, W, in, x, in, 0.f, t, N);
  // Transpose in 16-column blocks of y so reads of t stay within a few
  // cache lines per row block.
  const int64_t blocks = (out + 15) / 16;
#pragma omp parallel for if (N * out > (1 << 16))
  for (int64_t bj = 0; bj < blocks; ++bj) {
    const int64_t j0 = bj * 16, j1 = j0 + 16 < out ? j0 + 16 : out;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) y[i * out + j] = t[j * N + i] + (b ? b[j] : 0.f);
  }
}

// Pre-fills the rows of y[N, out] with the bias so the GEMM accumulates onto it (beta = 1): one
// pass over y instead of two.
void fill_bias(const float* b, float* y, int64_t N, int64_t out) {
#pragma omp parallel for if (N * out > (1 << 16))
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < out; ++j) y[i * out + j] = b[j];
}

// db[out] += column sums of dy[N, out], parallel over 16-column blocks (one
// cache line): each column is summed by one thread in row order, so the
// result is bit-identical for any thread count (reproducible training).
void bias_backward(const float* dy, float* db, int64_t N, int64_t out) {
  int64_t blocks = (out + 15) / 16;
#pragma omp parallel for if (N * out > (1 << 16))
  for (int64_t bj = 0; bj < blocks; ++bj) {
    int64_t j0 = bj * 16, j1 = j0 + 16 < out ? j0 + 16 : out;
    float acc[16] = {0};
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[i * out + j];
    for (int64_t j = j0; j < j1; ++j) db[j] += acc[j - j0];
  }
}

}  // namespace

void linear_forward(const float* x, const float* W, const float* b, float* y, int64_t N,
                    int64_t in, int64_t out) {
  if (use_transposed(N)) return linear_forward_transposed(x, W, b, y, N, in, out);
  float beta = 0.f;
  if (b) {
    fill_bias(b, y, N, out);
    beta = 1.f;
  }
  gemm(false, true, N, out, in, 1.f, x, in, W, in, beta, y, out);
}

void linear_backward(const float* dy, const float* x, const float* W, float* dx, float* dW,
                     float* db, int64_t N, int64_t in, int64_t out) {
  if (dx) gemm(false, false, N, in, out, 1.f, dy, out, W, in, 1.f, dx, in);   // dx += dy @ W
  if (dW) gemm(true, false, out, in, N, 1.f, dy, out, x, in, 1.f, dW, in);    // dW += dy^T @ x
  if (db) bias_backward(dy, db, N, out);
}

void linear_forward_bf16(const uint16_t* xh, const uint16_t* Wh, const float* b, float* y, int64_t N,
                         int64_t in, int64_t out) {
  float beta = 0.f;
  if (b) {
    fill_bias(b, y, N, out);
    beta = 1.f;
  }
  gemm_bf16(false, true, N, out, in, 1.f, xh, in, Wh, in, beta, y, out);
}

void linear_backward_bf16(const float* dy, const uint16_t* dyh, const uint16_t* xh, const uint16_t* Wh,
                          float* dx, float* dW, float* db, int64_t N, int64_t in, int64_t out) {
  if (dx) gemm_bf16(false, false, N, in, out, 1.f, dyh, out, Wh, in, 1.f, dx, in);  // dx += dy @ W
  if (dW) gemm_bf16(true, false, out, in, N, 1.f, dyh, out, xh, in, 1.f, dW, in);   // dW += dy^T @ x
  if (db) bias_backward(dy, db, N, out);
}

}  // namespace mmkit::ops
