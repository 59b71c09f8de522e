// Pair features of a relation network (Santoro et al. 2017), first layer of g:
//   y[b, i, j, :] = relu(a[b, i, :] + c[b, j, :] + q[b, :])      i, j in [0, P)
// g's first layer is a linear over the concatenation [o_i, o_j, question]; split by input it is
// a = W_a o_i + bias, c = W_c o_j and q = W_q question, three linears over P (or 1) rows each,
// plus this broadcast — instead of one linear over all P*P pairs (P times fewer multiply-adds).
// a, c [B, P, H], q [B, H] (may be null), y [B, P, P, H].
#pragma once
#include <cstdint>

namespace mmkit::ops {

void relation_pairs_forward(const float* a, const float* c, const float* q, float* y, int64_t B, int64_t P,
                            int64_t H);
// Gradients through the ReLU (mask y > 0), accumulated: da[b,i] += sum_j g[b,i,j],
// dc[b,j] += sum_i g[b,i,j], dq[b] += sum_ij g[b,i,j], g = dy * (y > 0). Any of da, dc, dq may be null.
void relation_pairs_backward(const float* dy, const float* y, float* da, float* dc, float* dq, int64_t B, int64_t P,
                             int64_t H);

}  // namespace mmkit::ops
