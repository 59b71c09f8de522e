// Cross-entropy of logits [N, K] against integer targets [N], mean over N,
// with label smoothing e (PyTorch semantics: the target distribution is
// (1 - e) * onehot + e / K). Fused with log-softmax: the forward keeps the
// probabilities so the backward is one pass:
//   dlogits = dloss / N * (softmax - target_distribution)
#pragma once
#include <cstdint>

namespace mmkit::ops {

// Returns the mean loss; probs[N,K] receives softmax(logits). Targets outside
// [0, K) throw mmkit::Error. ignore_index rows (target < 0) are skipped and
// excluded from the mean, as PyTorch's ignore_index=-100 does.
float cross_entropy_forward(const float* logits, const int32_t* targets, float* probs, int64_t N,
                            int64_t K, float label_smoothing);
void cross_entropy_backward(float dloss, const float* probs, const int32_t* targets, float* dlogits,
                            int64_t N, int64_t K, float label_smoothing);

}  // namespace mmkit::ops
