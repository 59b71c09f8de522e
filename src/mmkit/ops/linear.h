// Linear layer kernels: y[N,out] = x[N,in] @ W[out,in]^T + b[out]  (PyTorch's
// nn.Linear layout, so checkpoints load without transposes).
// Backward functions ACCUMULATE into their outputs (+=), the convention of
// every backward kernel in ops/: a tensor used twice gets the sum for free.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void linear_forward(const float* x, const float* W, const float* b, float* y, int64_t N,
                    int64_t in, int64_t out);
// Any of dx, dW, db may be null (not needed).
void linear_backward(const float* dy, const float* x, const float* W, float* dx, float* dW,
                     float* db, int64_t N, int64_t in, int64_t out);

// Mixed precision (`--precision bf16`): the same products with bf16 operands (raw uint16_t,
// ops/gemm_bf16.h) and f32 accumulation and outputs; the bias and db stay f32.
// xh [N, in], Wh [out, in], dyh [N, out] = dy rounded to bf16 (dy itself f32, for db).
void linear_forward_bf16(const uint16_t* xh, const uint16_t* Wh, const float* b, float* y, int64_t N,
                         int64_t in, int64_t out);
void linear_backward_bf16(const float* dy, const uint16_t* dyh, const uint16_t* xh, const uint16_t* Wh,
                          float* dx, float* dW, float* db, int64_t N, int64_t in, int64_t out);

}  // namespace mmkit::ops
