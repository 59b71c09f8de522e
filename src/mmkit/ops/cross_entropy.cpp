#include "mmkit/ops/cross_entropy.h"

#include <cmath>
#include <limits>

#include "mmkit/core/error.h"
#include "mmkit/ops/vecmath.h"

namespace mmkit::ops {

float cross_entropy_forward(const float* logits, const int32_t* targets, float* probs, int64_t N,
                            int64_t K, float e) {
  double total = 0;
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) {
    int32_t t = targets[i];
    MMKIT_CHECK(t < K, "cross_entropy: target ", t, " at row ", i, " outside [0, ", K, ")");
    const float* x = logits + i * K;
    float* p = probs + i * K;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < K; ++j) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int64_t j = 0; j < K; ++j) {
      p[j] = exp_approx(x[j] - m);
      s += p[j];
    }
    float inv = float(1.0 / s);
    for (int64_t j = 0; j < K; ++j) p[j] *= inv;
    if (t < 0) continue;
    double lse = m + std::log(s);
    // -sum_j q_j log p_j with q = (1-e) onehot + e/K
    double mean_logp = 0;
    for (int64_t j = 0; j < K; ++j) mean_logp += x[j] - lse;
    mean_logp /= double(K);
    total += -(1.0 - e) * (x[t] - lse) - e * mean_logp;
    ++counted;
  }
  return counted ? float(total / counted) : 0.f;
}

void cross_entropy_backward(float dloss, const float* probs, const int32_t* targets,
                            float* dlogits, int64_t N, int64_t K, float e) {
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) counted += targets[i] >= 0;
  if (!counted) return;
  float g = dloss / float(counted);
  for (int64_t i = 0; i < N; ++i) {
    int32_t t = targets[i];
    if (t < 0) continue;
    for (int64_t j = 0; j < K; ++j) {
      float q = e / float(K) + (j == t ? 1.f - e : 0.f);
      dlogits[i * K + j] += g * (probs[i * K + j] - q);
    }
  }
}

}  // namespace mmkit::ops
