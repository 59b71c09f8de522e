// Relation network (Santoro et al. 2017, "A simple neural network module for relational
// reasoning") over a set of tokens, conditioned on one vector per row:
//   RN(O, q) = out( mean_{i,j} g(o_i, o_j, q) )
// g is an MLP with `layers` ReLU layers of width H applied to every ordered pair (i, j),
// including i == j; its first layer is split by input (ops/relation_pairs.h), so only layers
// 2..L run on the P*P pairs. The paper sums over pairs; the mean only rescales, and keeps the
// output's scale independent of P.
//
// Geometry (geometry > 0): g's first layer also reads (W_p o_i - W_p o_j)^2, the element-wise
// squared differences of K learned projections of the two tokens (ops/relation_pairs.h,
// pair_sqdiff). A squared distance between learned positions is then linear in g's input;
// from coordinates alone g's ReLUs would have to approximate it (closest / furthest questions).
//
// Attention pooling (attention_heads > 0): besides the mean, the pair features are pooled by
// attention with a query from q: a_k = sum_p softmax_p(Q_k(q) . K_k(h_p) / sqrt(dh)) h_p[head k],
// and out reads [mean, a]. A sum or mean answers "how many pairs ..." well, but "which pair
// is the closest" is an argmin, which a sharp softmax forms directly (on Sort-of-CLEVR the
// mean-only RN left closest/furthest questions at ~67%; docs/RESULTS.md).
//
// Shapes: tokens O [B, P, D], cond q [B, Dq] -> [B, out_dim]. Cost per row: P*P*(L-1)*H*H
// multiply-adds (25 tokens, H 128, L 3: 20 M).
//
// Checkpoint names (prefix p): p.g.0.left {weight [H, D], bias [H]}, p.g.0.right.weight [H, D],
// p.g.0.cond.weight [H, Dq], p.g.{k}.{weight [H, H], bias [H]} for k = 1..L-1,
// p.geometry.proj.weight [K, D], p.g.0.geometry.weight [H, K] (geometry only),
// p.pool.query.{weight [H, Dq], bias}, p.pool.key.{weight [H, H], bias} (attention pooling only),
// p.out.{weight [out_dim, H or 2H], bias}. Together left/right/cond are the paper's first linear over
// the concatenation [o_i, o_j, q] (one bias), and are initialised as that layer would be in
// PyTorch: U(+-1/sqrt(2D + Dq + K)).
#pragma once
#include <string>
#include <vector>

#include "mmkit/autograd/functions.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct RelationConfig {
  int64_t dim = 0;       // D, token width
  int64_t cond_dim = 0;  // Dq, width of the conditioning vector (0: unconditioned)
  int64_t hidden = 128;  // H
  int64_t layers = 3;    // L >= 1 layers of g
  int64_t out_dim = 0;
  int64_t attention_heads = 0;  // attention pooling over the pairs (0: mean only); needs cond_dim > 0
  int64_t geometry = 0;         // K learned projections whose pairwise squared differences enter g (0: none)
};

struct RelationNetwork {
  RelationConfig cfg;
  Linear left, right, cond;   // first layer of g, split by input
  std::vector<Linear> g;      // layers 2..L: [H, H]
  Linear query, key;          // attention pooling: [H, Dq], [H, H]
  Linear geo_proj, geo_in;    // geometry: [K, D], [H, K]
  Linear out;                 // [out_dim, H]

  void init(const std::string& prefix, const RelationConfig& cfg, Rng& rng);
  void collect(ParamList& out);
};

// tokens [B, P, D], cond [B, Dq] (invalid Var when cfg.cond_dim == 0) -> [B, out_dim].
Var relation_network(Graph& g, RelationNetwork& m, Var tokens, Var cond);

}  // namespace mmkit::nn
