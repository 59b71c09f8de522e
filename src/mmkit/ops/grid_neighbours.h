// k x k neighbourhoods of the cells of a square grid of tokens (im2col for a stride-1,
// zero-padded convolution over token features):
//   y[b, p, (dy*k + dx)*C + c] = x[b, q, c],  q = (r + dy - k/2, col + dx - k/2) for p = (r, col),
// and 0 where q falls outside the G x G grid. A linear over y is then a k x k convolution,
// so a token's features can see whole objects that straddle cell borders.
// x [B, G*G, C] -> y [B, G*G, k*k*C]; k odd.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void grid_neighbours_forward(const float* x, float* y, int64_t B, int64_t G, int64_t C, int64_t k);
// dx[b, q] += the dy entries that copied it (accumulates).
void grid_neighbours_backward(const float* dy, float* dx, int64_t B, int64_t G, int64_t C, int64_t k);

}  // namespace mmkit::ops
