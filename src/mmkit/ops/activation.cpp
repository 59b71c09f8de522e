#include "mmkit/ops/activation.h"

#include "mmkit/ops/vecmath.h"

namespace mmkit::ops {

constexpr int64_t kParallelMin = 1 << 14;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

static inline float gelu1(float v) { return 0.5f * v * (1.f + erf_approx(v * kInvSqrt2)); }

void gelu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = gelu1(x[i]);
}

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  // d/dx [x Phi(x)] = Phi(x) + x phi(x)
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    float cdf = 0.5f * (1.f + erf_approx(v * kInvSqrt2));
    float pdf = kInvSqrt2Pi * exp_approx(-0.5f * v * v);
    dx[i] += dy[i] * (cdf + v * pdf);
  }
}

void quick_gelu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_approx(1.702f * x[i]);
}

void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  // d/dx [x s(ax)] = s(ax) + a x s(ax) (1 - s(ax))
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float s = sigmoid_approx(1.702f * x[i]);
    dx[i] += dy[i] * (s + 1.702f * x[i] * s * (1.f - s));
  }
}

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  constexpr float k2 = 2.f * 0.7978845608028654f;  // 2 sqrt(2 / pi)
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_approx(k2 * (x[i] + 0.044715f * x[i] * x[i] * x[i]));
}

void gelu_tanh_backward(const float* dy, const float* x, float* dx, int64_t n) {
  // y = x s(v), v = k2 (x + c x^3): dy/dx = s + x s (1 - s) k2 (1 + 3 c x^2)
  constexpr float k2 = 2.f * 0.7978845608028654f;
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x[i], s = sigmoid_approx(k2 * (xi + 0.044715f * xi * xi * xi));
    dx[i] += dy[i] * (s + xi * s * (1.f - s) * k2 * (1.f + 3.f * 0.044715f * xi * xi));
  }
}

void relu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void relu_backward(const float* dy, const float* x, float* dx, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > 0.f ? dy[i] : 0.f;
}

void relu_inplace(float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] > 0.f ? y[i] : 0.f;
}

void relu_mask_inplace(const float* y, float* dy, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dy[i] = y[i] > 0.f ? dy[i] : 0.f;
}

void bias_gelu_forward(const float* x, const float* b, float* pre, float* y, int64_t outer,
                       int64_t inner) {
#pragma omp parallel for if (outer * inner > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    const float* xr = x + o * inner;
    float* yr = y + o * inner;
    float* pr = pre ? pre + o * inner : nullptr;
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) {
      float v = xr[i] + b[i];
      if (pr) pr[i] = v;
      yr[i] = gelu1(v);
    }
  }
}

}  // namespace mmkit::ops
