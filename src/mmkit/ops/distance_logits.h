// Attention logits biased by the squared distance from a point (two-hop spatial attention,
// nn/hop_attention.h):
//   y[b, h, p] = s[b, p, h] - beta[h] * |pos[p] - c[b, h]|^2
// s: content logits [B, P, H] (a linear's output layout; y is transposed to [B, H, P] so a
// softmax over the last axis attends over the P cells), c: one centre per row and head
// [B, H, K], beta [H] (beta > 0 favours cells near c, beta < 0 cells far from it),
// pos: the cells' coordinates [P, K] (constant). A softmax over y is a soft argmin (argmax)
// of the distance — "the object closest to X" — which a plain dot-product score can only
// approximate.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void distance_logits_forward(const float* s, const float* c, const float* beta, const float* pos, float* y,
                             int64_t B, int64_t P, int64_t H, int64_t K);
// Accumulates into ds, dc, dbeta (any may be null):
//   ds[b,p,h] += dy[b,h,p]
//   dc[b,h,k] += sum_p dy[b,h,p] * 2 beta[h] (pos[p,k] - c[b,h,k])
//   dbeta[h]  -= sum_{b,p} dy[b,h,p] * |pos[p] - c[b,h]|^2
void distance_logits_backward(const float* dy, const float* c, const float* beta, const float* pos, float* ds,
                              float* dc, float* dbeta, int64_t B, int64_t P, int64_t H, int64_t K);

}  // namespace mmkit::ops
