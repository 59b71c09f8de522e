// Branch-free float math that GCC auto-vectorises (no libm calls in hot loops).
// Accuracy: exp_approx rel. error < 2e-7 on [-86, 88]; erf_approx abs. error
// < 2e-7 (Abramowitz & Stegun 7.1.26 form with our exp), tested in test_ops.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace mmkit::ops {

inline float exp_approx(float x) {
  // e^x = 2^k * e^r, k = round(x / ln2), r = x - k ln2 in [-ln2/2, ln2/2];
  // e^r by a degree-6 Taylor/minimax polynomial.
  // Clamp so the result is never subnormal (e^-86 = 4e-38 > FLT_MIN):
  // subnormal operands cost ~100x in later arithmetic, and any term this
  // small is negligible wherever it is used (softmax sums, GELU tails).
  x = x < -86.f ? -86.f : (x > 88.7f ? 88.7f : x);
  float kf = std::nearbyint(x * 1.44269504088896341f);
  float r = x - kf * 0.693145751953125f - kf * 1.428606765330187e-06f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t k = int32_t(kf);
  int32_t bits = (k + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

inline float erf_approx(float x) {
  // A&S 7.1.26 is only 1.5e-7 accurate as written for x >= 0; use odd symmetry.
  float ax = std::fabs(x);
  float t = 1.f / (1.f + 0.3275911f * ax);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  y = 1.f - y * t * exp_approx(-ax * ax);
  return std::copysign(y, x);
}

inline float sigmoid_approx(float x) { return 1.f / (1.f + exp_approx(-x)); }

}  // namespace mmkit::ops
