// Pair features of a relation network (Santoro et al. 2017), first layer of g:
//   y[b, i, j, :] = relu(a[b, i, :] + c[b, j, :] + q[b, :])      i, j in [0, P)
// g's first layer is a linear over the concatenation [o_i, o_j, question]; split by input it is
// a = W_a o_i + bias, c = W_c o_j and q = W_q question, three linears over P (or 1) rows each,
// plus this broadcast — instead of one linear over all P*P pairs (P times fewer multiply-adds).
// a, c [B, P, H], q [B, H] (may be null), y [B, P, P, H]. An optional per-pair term e [B, P, P, H]
// is added inside the ReLU too (relation_pairs with e; e.g. a linear of pair_sqdiff below).
//
// pair_sqdiff: d[b, i, j, :] = (p[b, i, :] - p[b, j, :])^2 element-wise, p [B, P, K] -> d [B, P, P, K]:
// squared differences of learned per-token projections, so a distance between two tokens is a
// linear function of d instead of something g's ReLUs must approximate from coordinates.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void relation_pairs_forward(const float* a, const float* c, const float* q, const float* e, float* y, int64_t B,
                            int64_t P, int64_t H);
// Gradients through the ReLU (mask y > 0), accumulated: da[b,i] += sum_j g[b,i,j],
// dc[b,j] += sum_i g[b,i,j], dq[b] += sum_ij g[b,i,j], de[b,i,j] += g[b,i,j], g = dy * (y > 0).
// Any of da, dc, dq, de may be null.
void relation_pairs_backward(const float* dy, const float* y, float* da, float* dc, float* dq, float* de, int64_t B,
                             int64_t P, int64_t H);

void pair_sqdiff_forward(const float* p, float* d, int64_t B, int64_t P, int64_t K);
// dp[b,i] += sum_j 2 (p_i - p_j) dd[b,i,j] - sum_j 2 (p_j - p_i) ... i.e. both roles of each token.
void pair_sqdiff_backward(const float* dd, const float* p, float* dp, int64_t B, int64_t P, int64_t K);

}  // namespace mmkit::ops
