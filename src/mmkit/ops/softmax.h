// Softmax and log-softmax over the last axis of x viewed as [rows, cols].
// Backward (accumulating), with y the forward output:
//   softmax:     dx += y * (dy - sum(dy * y))
//   log_softmax: dx += dy - exp(y) * sum(dy)
#pragma once
#include <cstdint>

namespace mmkit::ops {

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols);
void softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols);
void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t cols);
void log_softmax_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols);

// In-place softmax of one row; the attention kernels call it per query row.
void softmax_row_inplace(float* x, int64_t cols);

}  // namespace mmkit::ops
