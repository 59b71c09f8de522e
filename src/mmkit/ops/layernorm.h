// LayerNorm over the last axis: x viewed as [rows, D].
//   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased var)
// The forward stores mean and rstd per row ([rows] each) for the backward.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t D, float eps);
// Accumulates into dx, dw, db (any may be null).
void layernorm_backward(const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, int64_t rows,
                        int64_t D);

}  // namespace mmkit::ops
