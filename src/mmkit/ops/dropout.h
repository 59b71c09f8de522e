// Inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p). The mask
// (stored as the scale 0 or 1/(1-p) per element) is drawn from a counter-based
// hash of (seed, index), so it is reproducible and independent of threading.
#pragma once
#include <cstdint>

namespace mmkit::ops {

// index0: the index of x[0] in the stream (a data-parallel rank's slice of a
// global batch draws the mask the whole batch would have there).
void dropout_forward(const float* x, float* y, float* mask, int64_t n, float p, uint64_t seed, uint64_t index0 = 0);
void dropout_backward(const float* dy, const float* mask, float* dx, int64_t n);

}  // namespace mmkit::ops
