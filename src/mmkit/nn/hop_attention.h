// Two-hop spatial attention over the cells of a fine feature grid, for questions about the
// object closest to (or furthest from) an object X named in the question.
//
// Closest / furthest are an argmin / argmax of distances; on Sort-of-CLEVR a relation network
// over 15-px tokens left them at ~70% (docs/RESULTS.md), and even exact reasoning on the cells
// that contain the object centres would cap them at ~91-93% (the cells are too coarse), while
// 5-px cells allow ~98-99%. So this block works on the 5-px stem grid and makes the argmin a
// softmax over a distance:
//   L  = local features: two k x k (3 x 3) convolutions with GELU over the cells [B, P, C2]
//        (a 25-px receptive field, so a cell sees the whole 10-px object it belongs to)
//   hop 1 ("find X"), per head h:
//     a1[h] = softmax_p( L_p . Q1_h(q) )                  Q1 = find(q) reshaped [C2, H]
//     x[h]  = sum_p a1[h, p] pos_p                         the attended point, [2]
//     r1[h] = sum_p a1[h, p] L_p
//   hop 2 ("the cell nearest to / furthest from x"):
//     a2[h] = softmax_p( L_p . Q2_h(q) - beta_h |pos_p - x[h]|^2 )   (ops/distance_logits.h)
//     r2[h] = sum_p a2[h, p] L_p
//        with cfg.exclude = k > 0, minus k P stopgrad(sum of a1[h, .] over p's k x k neighbourhood):
//        the cells hop 1 found and their neighbours (X itself) drop out, so "closest" need not
//        learn to skip X
//   count (cfg.count = K > 0): z_p = relu(W_c L_p + b_c + A_c [r1 over all heads] + V_c q)  [K]:
//        per cell a score anchored on what hop 1 found and on the question, so a channel can mark
//        the cells of objects that share X's shape; c = mean_p z_p ("how many objects have the
//        same shape as X"). Hop 2's content then also reads z (+ z_p . R_h): the cells of objects
//        other than X are what closest / furthest look for too, and counting finds them early.
//   dist (cfg.dist_pool): softmax_p(gain z_pk - beta_d |pos_p - x_h|^2 + exclusion) . |pos - x_h|^2
//        per head, direction (nearest, furthest) and count channel: [2 H K]
//   out([x, r1, r2] over all heads, c, dist)
// beta_h = beta_scale * theta_h, initialised to +beta_init (even heads: nearest) and -beta_init
// (odd heads: furthest); the content terms let the question exclude X itself and the empty cells.
// The attended point x also answers "is X on the left" directly, so the non-relational
// questions train hop 1 before hop 2 has anything to read.
// pos: cell centres in [-1, 1], (x, y) = ((2 col + 1) / G - 1, (2 row + 1) / G - 1).
//
// Shapes: cells [B, G*G, C], cond q [B, Dq] -> [B, out_dim]. Cost per row about
// G^2 * 9 * (C + C2) * C2 multiply-adds for the convolutions (15 x 15 cells, C = C2 = 32: 4 M).
//
// Checkpoint names (prefix p): p.local1.{weight [C2, 9C], bias}, p.local2.{weight [C2, 9 C2], bias},
// p.find.{weight [C2*H, Dq], bias}, p.relate.{weight [C2*H, Dq], bias}, p.beta [H] (theta),
// p.count.{weight [K, C2], bias}, p.count_anchor.weight [K, H*C2], p.count_cond.weight [K, Dq],
// p.relate_count.weight [H, K] (count > 0 only), p.dist_beta [2] (dist_pool only),
// p.out.{weight [out_dim, H*(2 + 2 C2) + K (+ 2 H K with dist_pool)], bias}.
//
// The local features and the count's per-cell term depend only on the cells, not on the question:
// when the cells are an image's own (no FiLM), hop_local / hop_count_cells run once per image and
// their rows are gathered for the image's questions, and hop_readout does the per-question part
// (softmaxes and sums over the cells) — a small fraction of the convolutions' cost.
#pragma once
#include <string>

#include "mmkit/autograd/functions.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct HopConfig {
  int64_t in_dim = 0;       // C, cell feature width
  int64_t grid = 0;         // G: the cells form a G x G grid, row-major
  int64_t channels = 32;    // C2, width of the local features
  int64_t heads = 4;        // H
  int64_t cond_dim = 0;     // Dq, width of the question vector
  int64_t out_dim = 0;
  int64_t kernel = 3;       // k of the two local convolutions (odd)
  // beta = beta_scale * theta, theta a parameter initialised to +-beta_init / beta_scale.
  // beta_init is small: |pos| <= 1, so at beta 32 the softmax of a "furthest" head would sit
  // saturated on the far corner cells, where the content term gets no gradient; the scale lets
  // beta grow to the ~50-100 that 2-px margins need (a 0.053 margin at half the image's width
  // changes d^2 by ~0.05) at the optimizer's step size.
  float beta_init = 2.f, beta_scale = 32.f;
  int64_t count = 0;        // K: width of the count readout (0: none)
  float exclude = 0.f;      // k: hop 2 skips the cells hop 1 found (0: off)
  // Hop 2's content term is relate_scale * (L_p . Q2_h + z_p . R_h): like beta_scale, a scale > 1
  // lets the optimizer's steps move the content logits faster than the distance term.
  float relate_scale = 1.f;
  // Distance pooling over the count cells (needs count > 0): per head h, direction d and count
  // channel k, softmax_p(dist_gain z_pk - beta_d |pos_p - x_h|^2 + exclusion) and the squared
  // distance it lands on, [2 H K] more inputs of out. A channel that marks the squares (counting
  // learns such channels early) then gives "how far is the nearest / furthest square from X",
  // and comparing two channels answers closest / furthest without hop 2's content having to
  // learn what an object is. beta_d = beta_scale * theta_d (p.dist_beta [2]) starts at
  // +-dist_beta: gentle, so an object a little further away than the background next to X still
  // gets weight (and gradient); it sharpens as training needs. In the pooled distance itself
  // |pos - x_h|^2 is a constant.
  bool dist_pool = false;
  float dist_gain = 8.f, dist_beta = 4.f;
};

struct HopAttention {
  HopConfig cfg;
  Linear local1, local2;  // [C2, k*k*C], [C2, k*k*C2]
  Linear find, relate;    // [C2*H, Dq] each
  Parameter beta;         // theta [H]
  Linear count;           // [K, C2] (cfg.count > 0 only)
  Linear count_anchor;    // [K, H*C2], no bias (cfg.count > 0 only)
  Linear count_cond;      // [K, Dq], no bias (cfg.count > 0 only)
  Linear relate_count;    // [H, K], no bias (cfg.count > 0 only)
  Parameter dist_beta;    // theta [2] (cfg.dist_pool only)
  Linear out;             // [out_dim, H*(2 + 2 C2) + K]

  void init(const std::string& prefix, const HopConfig& cfg, Rng& rng);
  void collect(ParamList& out);
};

// Attention weights of the two hops, for inspection: [B, H, P] each.
struct HopProbes {
  Tensor find, relate;
};

// cells [B, G*G, C], cond [B, Dq] -> [B, out_dim]:
// hop_readout(L = hop_local(cells), hop_count_cells(L), cond).
Var hop_attention(Graph& g, HopAttention& m, Var cells, Var cond, HopProbes* probes = nullptr);
// The question-independent parts: cells [B, G*G, C] -> L [B, G*G, C2]; L -> the count's per-cell
// term W_c L_p + b_c [B, G*G, K] (an invalid Var when cfg.count == 0).
Var hop_local(Graph& g, HopAttention& m, Var cells);
Var hop_count_cells(Graph& g, HopAttention& m, Var L);
// The per-question part: L [B, G*G, C2], count_cells [B, G*G, K] (or invalid), cond [B, Dq]
// -> [B, out_dim]. find_cond [B, Dq], when given, replaces cond in hop 1's query only (e.g. a
// vector that names X and nothing else, so "find X" is the same search in every question type).
Var hop_readout(Graph& g, HopAttention& m, Var L, Var count_cells, Var cond, HopProbes* probes = nullptr,
                Var find_cond = {});

}  // namespace mmkit::nn
