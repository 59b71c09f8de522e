#include "mmkit/nn/cross_modal_attention.h"

namespace mmkit::nn {

void CrossModalAttention::init(const std::string& prefix, int64_t d, int64_t h, Rng& rng, int64_t cd) {
  MMKIT_CHECK(d > 0 && h > 0 && d % h == 0, "CrossModalAttention ", prefix, ": dim ", d,
              " not divisible by heads ", h);
  dim = d;
  heads = h;
  context_dim = cd > 0 ? cd : d;
  q_proj.init(join(prefix, "q_proj"), d, d, true, rng);
  k_proj.init(join(prefix, "k_proj"), context_dim, d, true, rng);
  v_proj.init(join(prefix, "v_proj"), context_dim, d, true, rng);
  o_proj.init(join(prefix, "o_proj"), d, d, true, rng);
  for (Linear* l : {&q_proj, &k_proj, &v_proj, &o_proj}) {
    init_xavier_uniform(l->weight, rng);
    init_constant(l->bias, 0.f);
  }
}

void CrossModalAttention::collect(ParamList& out) {
  q_proj.collect(out);
  k_proj.collect(out);
  v_proj.collect(out);
  o_proj.collect(out);
}

Var cross_modal_attention(Graph& g, CrossModalAttention& m, Var queries, Var context,
                          const CrossAttentionOptions& opt) {
  const Shape qs = g.shape(queries), cs = g.shape(context);
  MMKIT_CHECK(qs.n == 3 && qs[2] == m.dim, "cross-modal attention: queries must be [B, Tq, ", m.dim,
              "], got ", qs.str());
  MMKIT_CHECK(cs.n == 3 && cs[0] == qs[0] && cs[2] == m.context_dim,
              "cross-modal attention: context must be [", qs[0], ", Tk, ", m.context_dim, "], got ", cs.str());
  Var q = linear(g, m.q_proj, queries);  // [B, Tq, D]
  Var k = linear(g, m.k_proj, context);  // [B, Tk, D]
  Var v = linear(g, m.v_proj, context);  // [B, Tk, D]
  ag::AttnOptions ao;
  ao.heads = m.heads;
  ao.key_padding = opt.key_padding;
  ao.probs_out = opt.probs_out;
  Var ctx = ag::attention(g, {q, 0}, {k, 0}, {v, 0}, m.dim, ao);
  return linear(g, m.o_proj, ctx);
}

}  // namespace mmkit::nn
