// Cross-entropy of logits [N, K] against soft target distributions [N, K]
// (rows of non-negative weights, e.g. VQA soft scores normalised to sum 1):
//   loss = 1/N * sum_i sum_k -t_ik * log_softmax(z_i)_k
// Rows whose targets are all zero contribute nothing but still count in N
// (callers drop them when they should not dilute the mean). The forward keeps
// softmax(z) for the one-pass backward:
//   dz_ik = dloss / N * (p_ik * sum_k t_ik - t_ik)
#pragma once
#include <cstdint>

namespace mmkit::ops {

// Returns the mean loss; probs [N, K] receives softmax(logits). Negative or
// non-finite targets throw mmkit::Error naming the row.
float soft_cross_entropy_forward(const float* logits, const float* targets, float* probs, int64_t N,
                                 int64_t K);
void soft_cross_entropy_backward(float dloss, const float* probs, const float* targets, float* dlogits,
                                 int64_t N, int64_t K);

}  // namespace mmkit::ops
