// Element-wise arithmetic. Shapes: n = element count; for the broadcast forms
// x is viewed as [outer, inner] and the second operand as [inner].
#pragma once
#include <cstdint>

namespace mmkit::ops {

void add_forward(const float* a, const float* b, float* y, int64_t n);  // y = a + b
void mul_forward(const float* a, const float* b, float* y, int64_t n);  // y = a * b
// da += dy * b, db += dy * a (either may be null)
void mul_backward(const float* dy, const float* a, const float* b, float* da, float* db, int64_t n);
void scale_forward(const float* x, float s, float* y, int64_t n);       // y = s * x
void axpy(float s, const float* x, float* y, int64_t n);                // y += s * x

// y[o, i] = x[o, i] + b[i]
void add_broadcast_forward(const float* x, const float* b, float* y, int64_t outer, int64_t inner);
// db[i] += sum_o dy[o, i]
void sum_outer_accumulate(const float* dy, float* db, int64_t outer, int64_t inner);

}  // namespace mmkit::ops
