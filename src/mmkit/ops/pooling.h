// Token pooling over x [B, T, D] -> [B, D].
#pragma once
#include <cstdint>

namespace mmkit::ops {

void mean_tokens_forward(const float* x, float* y, int64_t B, int64_t T, int64_t D);
void mean_tokens_backward(const float* dy, float* dx, int64_t B, int64_t T, int64_t D);
// y[b] = x[b, index[b]] (index may differ per batch row, e.g. CLIP's EOT token).
void select_token_forward(const float* x, const int32_t* index, float* y, int64_t B, int64_t T,
                          int64_t D);
void select_token_backward(const float* dy, const int32_t* index, float* dx, int64_t B, int64_t T,
                           int64_t D);

}  // namespace mmkit::ops
