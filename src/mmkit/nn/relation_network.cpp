#include "mmkit/nn/relation_network.h"

#include <cmath>

namespace mmkit::nn {

void RelationNetwork::init(const std::string& prefix, const RelationConfig& c, Rng& rng) {
  MMKIT_CHECK(c.dim > 0 && c.hidden > 0 && c.out_dim > 0 && c.layers >= 1 && c.cond_dim >= 0,
              "relation network: dim, hidden, out_dim must be positive and layers >= 1, got dim ", c.dim, ", hidden ",
              c.hidden, ", out_dim ", c.out_dim, ", layers ", c.layers);
  MMKIT_CHECK(c.attention_heads == 0 || (c.attention_heads > 0 && c.cond_dim > 0 && c.hidden % c.attention_heads == 0),
              "relation network: attention pooling needs a conditioning vector and hidden (", c.hidden,
              ") divisible by attention_heads (", c.attention_heads, ")");
  MMKIT_CHECK(c.geometry >= 0, "relation network: geometry must be >= 0, got ", c.geometry);
  cfg = c;
  const std::string g0 = join(prefix, "g.0");
  left.init(join(g0, "left"), c.dim, c.hidden, true, rng);
  right.init(join(g0, "right"), c.dim, c.hidden, false, rng);
  if (c.cond_dim > 0) cond.init(join(g0, "cond"), c.cond_dim, c.hidden, false, rng);
  if (c.geometry > 0) {
    geo_proj.init(join(prefix, "geometry.proj"), c.dim, c.geometry, false, rng);
    geo_in.init(join(g0, "geometry"), c.geometry, c.hidden, false, rng);
  }
  // One linear over [o_i, o_j, q, geometry] in PyTorch: every part drawn with that layer's fan-in.
  const float bound = 1.f / std::sqrt(float(2 * c.dim + c.cond_dim + c.geometry));
  init_uniform(left.weight, bound, rng);
  init_uniform(left.bias, bound, rng);
  init_uniform(right.weight, bound, rng);
  if (c.cond_dim > 0) init_uniform(cond.weight, bound, rng);
  if (c.geometry > 0) init_uniform(geo_in.weight, bound, rng);
  g.assign(size_t(c.layers - 1), {});
  for (int64_t k = 1; k < c.layers; ++k)
    g[size_t(k - 1)].init(join(prefix, ("g." + std::to_string(k)).c_str()), c.hidden, c.hidden, true, rng);
  if (c.attention_heads > 0) {
    query.init(join(prefix, "pool.query"), c.cond_dim, c.hidden, true, rng);
    key.init(join(prefix, "pool.key"), c.hidden, c.hidden, true, rng);
  }
  out.init(join(prefix, "out"), c.attention_heads > 0 ? 2 * c.hidden : c.hidden, c.out_dim, true, rng);
}

void RelationNetwork::collect(ParamList& p) {
  left.collect(p);
  right.collect(p);
  if (cfg.cond_dim > 0) cond.collect(p);
  if (cfg.geometry > 0) {
    geo_proj.collect(p);
    geo_in.collect(p);
  }
  for (auto& l : g) l.collect(p);
  if (cfg.attention_heads > 0) {
    query.collect(p);
    key.collect(p);
  }
  out.collect(p);
}

Var relation_network(Graph& gr, RelationNetwork& m, Var tokens, Var cond) {
  const Shape s = gr.shape(tokens);
  MMKIT_CHECK(s.n == 3 && s[2] == m.cfg.dim, "relation network: expected tokens [B, P, ", m.cfg.dim, "], got ",
              s.str());
  const int64_t B = s[0], P = s[1], H = m.cfg.hidden;
  Var q;
  if (m.cfg.cond_dim > 0) {
    MMKIT_CHECK(cond.valid() && gr.shape(cond) == Shape({B, m.cfg.cond_dim}), "relation network: expected cond [",
                B, ", ", m.cfg.cond_dim, "]");
    q = linear(gr, m.cond, cond);                                   // [B, H]
  }
  Var a = linear(gr, m.left, tokens);                               // [B, P, H] (with g's first bias)
  Var c = linear(gr, m.right, tokens);                              // [B, P, H]
  Var e;
  if (m.cfg.geometry > 0) {
    Var pos = linear(gr, m.geo_proj, tokens);                       // [B, P, K]
    e = linear(gr, m.geo_in, ag::pair_sqdiff(gr, pos));             // [B, P, P, H]
  }
  Var h = ag::relation_pairs(gr, a, c, q, e);                       // [B, P, P, H]
  h = ag::reshape(gr, h, Shape{B * P * P, H});
  for (auto& l : m.g) h = linear_relu(gr, l, h);                   // [B*P*P, H]
  h = ag::reshape(gr, h, Shape{B, P * P, H});
  Var pooled = ag::mean_tokens(gr, h);                              // [B, H]
  if (m.cfg.attention_heads > 0) {
    Var qv = ag::reshape(gr, linear(gr, m.query, cond), Shape{B, 1, H});  // [B, 1, H]
    Var kv = linear(gr, m.key, h);                                        // [B, P*P, H]
    ag::AttnOptions ao;
    ao.heads = m.cfg.attention_heads;
    Var att = ag::attention(gr, {qv, 0}, {kv, 0}, {h, 0}, H, ao);        // [B, 1, H]
    pooled = ag::concat(gr, {pooled, ag::reshape(gr, att, Shape{B, H})}, 1);  // [B, 2H]
  }
  return linear(gr, m.out, pooled);                                 // [B, out_dim]
}

}  // namespace mmkit::nn
