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

// Data-parallel form (open_clip's ClipLoss with local_loss and gathered
// features): img/txt hold the M = N x B rows of every rank (gathered), this
// rank owns rows [r0, r0 + B). The loss is that of its own rows only, both
// directions, each against all M columns, averaged over its B rows:
//   loss = (sum_{i own} CE(L[i, :], i) + sum_{j own} CE(L[:, j], j)) / (2B)
// so the mean of the N ranks' losses is the single-process loss of the
// global batch. Saved state: a, b [M, E] normalised, norms [2M + 1] (the last
// = d loss / d t), g [2 x B x M]: d loss / d L of the own rows [B, M], then of
// the own columns stored transposed [B, M]; logits (optional) [B, M] = the own rows.
struct ContrastiveRowsSaved {
  float* a;
  float* b;
  float* norms;
  float* g;
  float* logits;
};
float contrastive_loss_rows_forward(const float* img, const float* txt, float t, int64_t M, int64_t E, int64_t r0,
                                    int64_t B, const ContrastiveRowsSaved& s);
// Accumulates (+=) into dimg, dtxt [M, E] (all rows; the caller sums them
// over the ranks and keeps its own) and dt.
void contrastive_loss_rows_backward(float dloss, float t, int64_t M, int64_t E, int64_t r0, int64_t B,
                                    const ContrastiveRowsSaved& s, float* dimg, float* dtxt, float* dt);

}  // namespace mmkit::ops
