// Max over tokens with a padding mask: y[b, d] = max_{t : pad[b,t] == 0} x[b, t, d]
// for x [B, T, D]; argmax [B, D] (I32) is kept for the backward, which routes
// dy[b, d] to the winning token (ties: the first). A row with every token
// padded outputs 0 and gets no gradient.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void masked_max_tokens_forward(const float* x, const uint8_t* pad, float* y, int32_t* argmax, int64_t B, int64_t T,
                               int64_t D);
void masked_max_tokens_backward(const float* dy, const int32_t* argmax, float* dx, int64_t B, int64_t T, int64_t D);

}  // namespace mmkit::ops
