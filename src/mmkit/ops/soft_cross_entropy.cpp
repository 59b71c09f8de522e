#include "mmkit/ops/soft_cross_entropy.h"

#include <cmath>
#include <limits>

#include "mmkit/core/error.h"

namespace mmkit::ops {

float soft_cross_entropy_forward(const float* logits, const float* targets, float* probs, int64_t N,
                                 int64_t K) {
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* x = logits + i * K;
    const float* t = targets + i * K;
    float* p = probs + i * K;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < K; ++j) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int64_t j = 0; j < K; ++j) {
      p[j] = std::exp(x[j] - m);
      s += p[j];
    }
    const float inv = float(1.0 / s);
    for (int64_t j = 0; j < K; ++j) p[j] *= inv;
    const double lse = m + std::log(s);
    for (int64_t j = 0; j < K; ++j) {
      MMKIT_CHECK(t[j] >= 0.f && std::isfinite(t[j]), "soft_cross_entropy: target ", t[j], " at row ", i,
                  ", column ", j, " is not a finite non-negative weight");
      if (t[j] > 0.f) total += double(t[j]) * (lse - x[j]);
    }
  }
  return N ? float(total / double(N)) : 0.f;
}

void soft_cross_entropy_backward(float dloss, const float* probs, const float* targets, float* dlogits,
                                 int64_t N, int64_t K) {
  if (!N) return;
  const float g = dloss / float(N);
  for (int64_t i = 0; i < N; ++i) {
    const float* t = targets + i * K;
    const float* p = probs + i * K;
    float tsum = 0;
    for (int64_t j = 0; j < K; ++j) tsum += t[j];
    for (int64_t j = 0; j < K; ++j) dlogits[i * K + j] += g * (p[j] * tsum - t[j]);
  }
}

}  // namespace mmkit::ops
