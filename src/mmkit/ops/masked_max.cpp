#include "mmkit/ops/masked_max.h"

namespace mmkit::ops {

void masked_max_tokens_forward(const float* x, const uint8_t* pad, float* y, int32_t* argmax, int64_t B, int64_t T,
                               int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    float* yb = y + b * D;
    int32_t* ab = argmax + b * D;
    for (int64_t d = 0; d < D; ++d) ab[d] = -1;
    for (int64_t t = 0; t < T; ++t) {
      if (pad && pad[b * T + t]) continue;
      const float* xt = x + (b * T + t) * D;
      for (int64_t d = 0; d < D; ++d)
        if (ab[d] < 0 || xt[d] > yb[d]) {
          yb[d] = xt[d];
          ab[d] = int32_t(t);
        }
    }
    for (int64_t d = 0; d < D; ++d)
      if (ab[d] < 0) yb[d] = 0.f;
  }
}

void masked_max_tokens_backward(const float* dy, const int32_t* argmax, float* dx, int64_t B, int64_t T, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      const int32_t t = argmax[b * D + d];
      if (t >= 0) dx[(b * T + t) * D + d] += dy[b * D + d];
    }
}

}  // namespace mmkit::ops
