// CLIP's symmetric contrastive loss (Radford et al. 2021, Fig. 3), fused:
//   a = img / |img|, b = txt / |txt|            (rows, [B, E])
//   L = exp(t) * a @ b^T                          ([B, B]; image i vs text j)
//   loss = (CE(L, diag) + CE(L^T, diag)) / 2      (mean over the batch)
// Pair i is (img_i, txt_i); every other row/column of the batch is a negative.
// One fused op instead of normalise + matmul + scale + two cross-entropies:
// the B x B work is tiny, and keeping it together keeps the saved state to
// the normalised rows and one [B, B] gradient matrix.
#pragma once
#include <cstdint>

namespace mmkit::ops {

struct ContrastiveSaved {
  float* a;      // [B, E] normalised image rows
  float* b;      // [B, E] normalised text rows
  float* norms;  // [2B + 1]: |img_i|, then |txt_i|, then sum(dlogits * L) (= d loss / d t)
  float* dlogits;  // [B, B]: d loss / d L  (for an upstream gradient of 1)
  float* logits;   // [B, B] (optional output, may be null)
};

// Returns the loss; fills `s` (all but `logits` required). t = log of the
// inverse temperature (CLIP's logit_scale parameter).
float contrastive_loss_forward(const float* img, const float* txt, float t, int64_t B, int64_t E,
                               const ContrastiveSaved& s);

// Accumulates (+=) gradients for upstream gradient `dloss`; any of
// dimg/dtxt/dt may be null.
void contrastive_loss_backward(float dloss, float t, int64_t B, int64_t E, const ContrastiveSaved& s,
                               float* dimg, float* dtxt, float* dt);

}  // namespace mmkit::ops
