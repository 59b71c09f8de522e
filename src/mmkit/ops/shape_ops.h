// Data movement: concat, axis permutation, batch broadcast. All tensors are
// contiguous; a permutation materialises its result.
#pragma once
#include <cstdint>

#include "mmkit/core/tensor.h"

namespace mmkit::ops {

// Concatenate along `axis`: inputs viewed as [outer, a_k * inner]; y is
// [outer, sum_k a_k * inner]. `sizes[k]` = a_k * inner (floats per outer row).
void concat_forward(const float* const* xs, const int64_t* sizes, int n, float* y, int64_t outer);
void concat_backward(const float* dy, float* const* dxs, const int64_t* sizes, int n,
                     int64_t outer);  // accumulates; null dxs[k] skipped

// y = x with axes a and b swapped; x has shape `s`.
void transpose_forward(const float* x, float* y, const Shape& s, int a, int b);
// dx += transpose(dy) back to x's layout; `s` is x's shape.
void transpose_backward(const float* dy, float* dx, const Shape& s, int a, int b);

}  // namespace mmkit::ops
