#include "mmkit/ops/elementwise.h"

namespace mmkit::ops {

constexpr int64_t kParallelMin = 1 << 15;

void add_forward(const float* a, const float* b, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void mul_forward(const float* a, const float* b, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

void mul_backward(const float* dy, const float* a, const float* b, float* da, float* db,
                  int64_t n) {
  if (da) {
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) da[i] += dy[i] * b[i];
  }
  if (db) {
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) db[i] += dy[i] * a[i];
  }
}

void scale_forward(const float* x, float s, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = s * x[i];
}

void axpy(float s, const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += s * x[i];
}

void add_broadcast_forward(const float* x, const float* b, float* y, int64_t outer,
                           int64_t inner) {
#pragma omp parallel for if (outer * inner > kParallelMin)
  for (int64_t o = 0; o < outer; ++o)
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) y[o * inner + i] = x[o * inner + i] + b[i];
}

void sum_outer_accumulate(const float* dy, float* db, int64_t outer, int64_t inner) {
  // Serial over `outer` keeps the sum order fixed (deterministic training);
  // callers reduce small tensors (biases, positional embeddings) only.
  for (int64_t o = 0; o < outer; ++o)
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) db[i] += dy[o * inner + i];
}

}  // namespace mmkit::ops
