// Activations, element-wise over n values.
//   gelu:       x * Phi(x) with the exact erf form (PyTorch's default "gelu")
//   quick_gelu: x * sigmoid(1.702 x)  (OpenAI CLIP)
//   gelu_tanh:  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's gelu(approximate="tanh")
//               (transformers' "gelu_pytorch_tanh", SigLIP); computed as x * sigmoid(2 u), the same
//               function, since 0.5 (1 + tanh(u)) = sigmoid(2 u)
//   relu:       max(x, 0); its derivative at 0 is taken as 0, as PyTorch does
// Backward kernels accumulate dx += dy * f'(x).
#pragma once
#include <cstdint>

namespace mmkit::ops {

void gelu_forward(const float* x, float* y, int64_t n);
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n);
void quick_gelu_forward(const float* x, float* y, int64_t n);
void quick_gelu_backward(const float* dy, const float* x, float* dx, int64_t n);
void gelu_tanh_forward(const float* x, float* y, int64_t n);
void gelu_tanh_backward(const float* dy, const float* x, float* dx, int64_t n);
void relu_forward(const float* x, float* y, int64_t n);
void relu_backward(const float* dy, const float* x, float* dx, int64_t n);  // dx += x > 0 ? dy : 0
void relu_inplace(float* y, int64_t n);
void relu_mask_inplace(const float* y, float* dy, int64_t n);  // dy = y > 0 ? dy : 0 (y = relu output)

// Fused y[o,i] = act(x[o,i] + b[i]) for the MLP's first linear; `pre` (may be
// null) receives x + b, which the backward needs.
void bias_gelu_forward(const float* x, const float* b, float* pre, float* y, int64_t outer,
                       int64_t inner);

}  // namespace mmkit::ops
