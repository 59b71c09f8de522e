#include "mmkit/ops/softmax.h"

#include <cmath>
#include <limits>

#include "mmkit/ops/vecmath.h"

namespace mmkit::ops {

constexpr int64_t kParallelMin = 1 << 14;

void softmax_row_inplace(float* x, int64_t cols) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < cols; ++j) m = x[j] > m ? x[j] : m;
  if (m == -std::numeric_limits<float>::infinity()) {
    // Fully masked row: define the output as zeros rather than NaN.
    for (int64_t j = 0; j < cols; ++j) x[j] = 0.f;
    return;
  }
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < cols; ++j) {
    float e = exp_approx(x[j] - m);
    x[j] = e;
    s += e;
  }
  float inv = 1.f / s;
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) x[j] *= inv;
}

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = x[r * cols + j];
    softmax_row_inplace(y + r * cols, cols);
  }
}

void softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dy + r * cols;
    const float* p = y + r * cols;
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; ++j) dot += g[j] * p[j];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dx[r * cols + j] += p[j] * (g[j] - dot);
  }
}

void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < cols; ++j) s += exp_approx(xr[j] - m);
    float lse = m + std::log(s);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = xr[j] - lse;
  }
}

void log_softmax_backward(const float* dy, const float* y, float* dx, int64_t rows,
                          int64_t cols) {
#pragma omp parallel for if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dy + r * cols;
    float s = 0.f;
    for (int64_t j = 0; j < cols; ++j) s += g[j];
    for (int64_t j = 0; j < cols; ++j)
      dx[r * cols + j] += g[j] - exp_approx(y[r * cols + j]) * s;
  }
}

}  // namespace mmkit::ops
