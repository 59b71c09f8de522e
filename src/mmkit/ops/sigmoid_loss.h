// SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for
// Language Image Pre-Training", Algorithm 1; open_clip's SigLipLoss), fused:
//   a = img / |img|  [B, E] (this rank's image rows),  b = txt / |txt|  [M, E]
//   L = exp(t) * a @ b^T + bias                          [B, M]
//   z_ij = +1 if j == r0 + i (the row's own caption), else -1
//   loss = sum_ij -log sigmoid(z_ij * L_ij) / B
// One process: M = B, r0 = 0 (open_clip's _loss). Data-parallel: b holds the
// text rows of every rank (M = N x B, gathered) and this rank's images start
// at global row r0; the loss is that of its own image rows against every
// caption, so the mean of the N ranks' losses is the one-process loss of the
// global batch: open_clip's SigLipLoss sums, per rank, its own block plus the
// negative-only blocks of the neighbours' texts, all divided by the local B.
// Unlike the softmax loss each pair is an independent binary term, so only
// one direction (images x texts) is needed and the texts are the only
// features another rank must see.
#pragma once
#include <cstdint>

namespace mmkit::ops {

struct SigmoidLossSaved {
  float* a;        // [B, E] normalised image rows
  float* b;        // [M, E] normalised text rows
  float* norms;    // [B + M + 2]: |img_i|, |txt_j|, then d loss / d t and d loss / d bias
  float* dlogits;  // [B, M]: d loss / d L (for an upstream gradient of 1)
  float* logits;   // [B, M] = L (optional output, may be null)
};

// Returns the loss and fills `s` (all but `logits` required). t = log of the
// logit scale (CLIP's logit_scale parameter), bias = SigLIP's logit_bias.
float sigmoid_loss_forward(const float* img, const float* txt, float t, float bias, int64_t B, int64_t M, int64_t E,
                           int64_t r0, const SigmoidLossSaved& s);

// Accumulates (+=) gradients for upstream gradient `dloss` into dimg [B, E],
// dtxt [M, E] (every text row; data-parallel callers sum it over the ranks
// and keep their own rows), dt and dbias; any may be null.
void sigmoid_loss_backward(float dloss, float t, int64_t B, int64_t M, int64_t E, const SigmoidLossSaved& s,
                           float* dimg, float* dtxt, float* dt, float* dbias);

}  // namespace mmkit::ops
