// Differentiable ops on Graph values. Each records a Node (when a gradient is
// needed) whose backward calls the matching *_backward kernel in ops/.
// Shape letters: B batch, T tokens, D model width, K classes, N rows.
#pragma once
#include <vector>

#include "mmkit/autograd/graph.h"

namespace mmkit::dist {
class Communicator;
}

namespace mmkit::ag {

// y[..., out] = x[..., in] @ W[out, in]^T + b[out]; b may be an invalid Var.
Var linear(Graph& g, Var x, Var W, Var b);
// Same with only rows [row0, row0 + rows) of W (rows < 0: to the end) and
// bias elements [bias0, bias0 + rows) of b (bias0 < 0: bias0 = row0).
Var linear_rows(Graph& g, Var x, Var W, Var b, int64_t row0, int64_t rows, int64_t bias0 = -1);
// y[..., M] = a[..., K] @ b[K, M]  (b not transposed: CLIP's proj matrices)
Var linear_relu(Graph& g, Var x, Var W, Var b);    // relu(linear(x, W, b)), fused
Var matmul(Graph& g, Var a, Var b);
Var add(Graph& g, Var a, Var b);                    // same shapes
Var add_broadcast(Graph& g, Var x, Var b);          // b's shape = trailing dims of x
Var mul(Graph& g, Var a, Var b);                    // same shapes
Var scale(Graph& g, Var x, float s);
Var gelu(Graph& g, Var x);                          // erf form
Var quick_gelu(Graph& g, Var x);                    // x * sigmoid(1.702 x)
Var gelu_tanh(Graph& g, Var x);                     // PyTorch gelu(approximate="tanh")
Var relu(Graph& g, Var x);
Var softmax(Graph& g, Var x);                       // last axis
Var log_softmax(Graph& g, Var x);                   // last axis
// Mean cross-entropy of logits [N, K] vs targets (I32 [N]); scalar [1].
Var cross_entropy(Graph& g, Var logits, const Tensor& targets, float label_smoothing = 0.f);
// CLIP's symmetric contrastive loss over a batch of B (image, text) pairs:
// img [B, E], txt [B, E] (raw embeddings; normalised inside), logit_scale
// [1] or [] = log inverse temperature -> scalar [1]. logits_out (optional)
// receives the [B, B] scaled cosine similarities (for accuracy/recall).
Var clip_contrastive_loss(Graph& g, Var img, Var txt, Var logit_scale, Tensor* logits_out = nullptr);
// Data-parallel: this rank's rows [B, E] against every rank's (gathered with
// `comm`), open_clip's ClipLoss(local_loss=True, gather_with_grad=True); the
// mean over ranks equals the single-process loss of the global batch.
// logits_out (optional) [B, N x B]. See ops::contrastive_loss_rows_forward.
Var clip_contrastive_loss_gathered(Graph& g, Var img, Var txt, Var logit_scale, dist::Communicator& comm,
                                   Tensor* logits_out = nullptr);
// SigLIP's pairwise sigmoid loss (open_clip's SigLipLoss; ops/sigmoid_loss.h):
// img [B, E], txt [B, E] (raw embeddings; normalised inside), logit_scale and
// logit_bias [1] or [] -> scalar [1] = sum_ij -log sigmoid(z_ij (exp(t) cos_ij
// + bias)) / B, z = +1 on the diagonal, -1 elsewhere. logits_out (optional)
// receives the [B, B] logits, bias included.
Var sigmoid_loss(Graph& g, Var img, Var txt, Var logit_scale, Var logit_bias, Tensor* logits_out = nullptr);
// Data-parallel: this rank's image rows [B, E] against the text rows of every
// rank (all-gathered with `comm`; the texts' gradients are summed over the
// ranks in the backward); the mean over ranks equals the single-process loss
// of the global batch. logits_out (optional) [B, N x B].
Var sigmoid_loss_gathered(Graph& g, Var img, Var txt, Var logit_scale, Var logit_bias, dist::Communicator& comm,
                          Tensor* logits_out = nullptr);
// Mean over N of -sum_k targets[n,k] * log_softmax(logits[n])_k; targets F32 [N, K]
// (soft target distributions, e.g. VQA soft scores); scalar [1].
Var soft_cross_entropy(Graph& g, Var logits, const Tensor& targets);
Var layernorm(Graph& g, Var x, Var w, Var b, float eps);  // over the last axis
Var embedding(Graph& g, Var table, const Tensor& ids);    // table [V, D], ids I32 [...] -> [..., D]
// images [B, C, H, W], W [D, C, p, p], b [D] (may be invalid) -> [B, (H/p)*(W/p), D]
Var patch_embed(Graph& g, Var images, Var W, Var b, int64_t patch);
Var concat(Graph& g, const std::vector<Var>& xs, int axis);  // 1 to 7 inputs
Var reshape(Graph& g, Var x, const Shape& s);
Var transpose(Graph& g, Var x, int a, int b);
Var broadcast_batch(Graph& g, Var x, int64_t B);    // [1, ...] -> [B, ...]
Var mean_tokens(Graph& g, Var x);                   // [B, T, D] -> [B, D]
// Max over the unpadded tokens (pad U8 [B, T], nonzero = skip; may be null): [B, T, D] -> [B, D].
Var max_tokens(Graph& g, Var x, const Tensor* pad);
Var select_token(Graph& g, Var x, int64_t t);       // [B, T, D] -> [B, D], same t per row
Var select_token(Graph& g, Var x, const Tensor& index);  // index I32 [B]
Var dropout(Graph& g, Var x, float p);              // identity unless g.training
// y[m] = x[index[m]] along the leading axis; index I32 [M]; backward scatter-adds.
Var gather_rows(Graph& g, Var x, const Tensor& index);
// [B, C] -> [B, N, C]: row b repeated N times (gather_rows, whose backward sums the copies).
Var repeat_rows(Graph& g, Var x, int64_t N);
// Relation-network pairs (ops/relation_pairs.h): relu(a[b,i] + c[b,j] + q[b] + e[b,i,j]) for a, c
// [B, P, H], q [B, H] or invalid, e [B, P, P, H] or invalid -> [B, P, P, H].
Var relation_pairs(Graph& g, Var a, Var c, Var q, Var e = {});
// (p[b,i] - p[b,j])^2 element-wise: p [B, P, K] -> [B, P, P, K].
Var pair_sqdiff(Graph& g, Var p);
// Batched matrix product: a [B, M, K] @ b [B, K, N] -> [B, M, N].
Var bmm(Graph& g, Var a, Var b);
// k x k neighbourhoods on a G x G token grid (ops/grid_neighbours.h): x [B, G*G, C] -> [B, G*G, k*k*C].
Var grid_neighbours(Graph& g, Var x, int64_t G, int64_t k);
// Distance-biased attention logits (ops/distance_logits.h): s [B, P, H], c [B, H, K], beta [H],
// pos [P, K] (constant) -> [B, H, P], s[b,p,h] - beta[h] |pos[p] - c[b,h]|^2.
Var distance_logits(Graph& g, Var s, Var c, Var beta, const Tensor& pos);

// Multi-head scaled-dot-product attention reading heads in place:
// q from `q.var` [B, Tq, ldq] starting at column q.col (H*dh columns), etc.
struct AttnIn {
  Var var;
  int64_t col = 0;
};
struct AttnOptions {
  int64_t heads = 1;
  bool causal = false;
  const Tensor* key_padding = nullptr;  // U8 [B, Tk], nonzero = padding
  Tensor* probs_out = nullptr;          // receives [B, H, Tq, Tk] (inspection)
};
// Returns [B, Tq, D]; D = width of the q/k/v column ranges (= heads * dh).
Var attention(Graph& g, AttnIn q, AttnIn k, AttnIn v, int64_t D, const AttnOptions& opt);

}  // namespace mmkit::ag
