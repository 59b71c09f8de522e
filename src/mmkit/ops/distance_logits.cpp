#include "mmkit/ops/distance_logits.h"

namespace mmkit::ops {

namespace {

float sqdist(const float* a, const float* b, int64_t K) {
  float d = 0.f;
  for (int64_t k = 0; k < K; ++k) d += (a[k] - b[k]) * (a[k] - b[k]);
  return d;
}

}  // namespace

void distance_logits_forward(const float* s, const float* c, const float* beta, const float* pos, float* y,
                             int64_t B, int64_t P, int64_t H, int64_t K) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const float* ch = c + (b * H + h) * K;
      float* yh = y + (b * H + h) * P;
      for (int64_t p = 0; p < P; ++p) yh[p] = s[(b * P + p) * H + h] - beta[h] * sqdist(pos + p * K, ch, K);
    }
}

void distance_logits_backward(const float* dy, const float* c, const float* beta, const float* pos, float* ds,
                              float* dc, float* dbeta, int64_t B, int64_t P, int64_t H, int64_t K) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const float* ch = c + (b * H + h) * K;
      const float* gh = dy + (b * H + h) * P;
      float* dch = dc ? dc + (b * H + h) * K : nullptr;
      float db = 0.f;
      for (int64_t p = 0; p < P; ++p) {
        const float g = gh[p];
        if (ds) ds[(b * P + p) * H + h] += g;
        if (dch)
          for (int64_t k = 0; k < K; ++k) dch[k] += 2.f * beta[h] * g * (pos[p * K + k] - ch[k]);
        if (dbeta) db += g * sqdist(pos + p * K, ch, K);
      }
      if (dbeta) dbeta[h] -= db;
    }
}

}  // namespace mmkit::ops
