#include "mmkit/ops/pooling.h"

#include "mmkit/core/error.h"

namespace mmkit::ops {

void mean_tokens_forward(const float* x, float* y, int64_t B, int64_t T, int64_t D) {
  float inv = 1.f / float(T);
  for (int64_t b = 0; b < B; ++b) {
    float* yr = y + b * D;
    for (int64_t j = 0; j < D; ++j) yr[j] = 0.f;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < D; ++j) yr[j] += x[(b * T + t) * D + j];
    for (int64_t j = 0; j < D; ++j) yr[j] *= inv;
  }
}

void mean_tokens_backward(const float* dy, float* dx, int64_t B, int64_t T, int64_t D) {
  float inv = 1.f / float(T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < D; ++j) dx[(b * T + t) * D + j] += dy[b * D + j] * inv;
}

void select_token_forward(const float* x, const int32_t* index, float* y, int64_t B, int64_t T,
                          int64_t D) {
  for (int64_t b = 0; b < B; ++b) {
    MMKIT_CHECK(index[b] >= 0 && index[b] < T, "select_token: index ", index[b], " for batch row ",
                b, " outside [0, ", T, ")");
    for (int64_t j = 0; j < D; ++j) y[b * D + j] = x[(b * T + index[b]) * D + j];
  }
}

void select_token_backward(const float* dy, const int32_t* index, float* dx, int64_t B, int64_t T,
                           int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < D; ++j) dx[(b * T + index[b]) * D + j] += dy[b * D + j];
}

}  // namespace mmkit::ops
