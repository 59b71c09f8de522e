#include "mmkit/ops/linear.h"

#include "mmkit/ops/gemm.h"

namespace mmkit::ops {

void linear_forward(const float* x, const float* W, const float* b, float* y, int64_t N,
                    int64_t in, int64_t out) {
  float beta = 0.f;
  if (b) {
    // Pre-fill rows with the bias and let the GEMM accumulate onto it: one
    // pass over y instead of two.
#pragma omp parallel for if (N * out > (1 << 16))
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < out; ++j) y[i * out + j] = b[j];
    beta = 1.f;
  }
  gemm(false, true, N, out, in, 1.f, x, in, W, in, beta, y, out);
}

void linear_backward(const float* dy, const float* x, const float* W, float* dx, float* dW,
                     float* db, int64_t N, int64_t in, int64_t out) {
  if (dx) gemm(false, false, N, in, out, 1.f, dy, out, W, in, 1.f, dx, in);   // dx += dy @ W
  if (dW) gemm(true, false, out, in, N, 1.f, dy, out, x, in, 1.f, dW, in);    // dW += dy^T @ x
  if (db) {
    // Column sums of dy, parallel over 16-column blocks (one cache line):
    // each column is summed by one thread in row order, so the result is
    // bit-identical for any thread count (reproducible training).
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
}

}  // namespace mmkit::ops
