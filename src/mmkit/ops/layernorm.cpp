#include "mmkit/ops/layernorm.h"

#include <cmath>

namespace mmkit::ops {

constexpr int64_t kParallelMin = 1 << 14;

void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t D, float eps) {
#pragma omp parallel for if (rows * D > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < D; ++j) s += xr[j];
    float m = s / float(D);
    float v = 0.f;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < D; ++j) v += (xr[j] - m) * (xr[j] - m);
    float rs = 1.f / std::sqrt(v / float(D) + eps);
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
    float* yr = y + r * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) yr[j] = (xr[j] - m) * rs * w[j] + b[j];
  }
}

void layernorm_backward(const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, int64_t rows,
                        int64_t D) {
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w
  if (dx) {
#pragma omp parallel for if (rows * D > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * D;
      const float* gr = dy + r * D;
      float m = mean[r], rs = rstd[r];
      float sg = 0.f, sgx = 0.f;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t j = 0; j < D; ++j) {
        float g = gr[j] * w[j];
        sg += g;
        sgx += g * (xr[j] - m) * rs;
      }
      sg /= float(D);
      sgx /= float(D);
      float* dxr = dx + r * D;
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) {
        float xhat = (xr[j] - m) * rs;
        dxr[j] += rs * (gr[j] * w[j] - sg - xhat * sgx);
      }
    }
  }
  if (dw || db) {
    // Parameter gradients: column sums, parallel over column blocks so the
    // summation order is fixed (deterministic for any thread count).
    int64_t blocks = (D + 15) / 16;
#pragma omp parallel for if (rows * D > kParallelMin)
    for (int64_t bj = 0; bj < blocks; ++bj) {
      int64_t j0 = bj * 16, j1 = j0 + 16 < D ? j0 + 16 : D;
      float aw[16] = {0}, ab[16] = {0};
      for (int64_t r = 0; r < rows; ++r) {
        float m = mean[r], rs = rstd[r];
        for (int64_t j = j0; j < j1; ++j) {
          float g = dy[r * D + j];
          aw[j - j0] += g * (x[r * D + j] - m) * rs;
          ab[j - j0] += g;
        }
      }
      for (int64_t j = j0; j < j1; ++j) {
        if (dw) dw[j] += aw[j - j0];
        if (db) db[j] += ab[j - j0];
      }
    }
  }
}

}  // namespace mmkit::ops
