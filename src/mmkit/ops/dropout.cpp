#include "mmkit/ops/dropout.h"

namespace mmkit::ops {

static inline uint64_t mix(uint64_t z) {
  // splitmix64 finaliser: a good 64-bit hash of a counter.
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void dropout_forward(const float* x, float* y, float* mask, int64_t n, float p, uint64_t seed, uint64_t index0) {
  float keep_scale = 1.f / (1.f - p);
  uint64_t threshold = uint64_t(double(p) * 18446744073709551616.0);
#pragma omp parallel for if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    float m = mix(seed * 0x9e3779b97f4a7c15ULL + index0 + uint64_t(i)) < threshold ? 0.f : keep_scale;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

void dropout_backward(const float* dy, const float* mask, float* dx, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * mask[i];
}

}  // namespace mmkit::ops
