#include "mmkit/nn/multihead_attention.h"

#include <cmath>

namespace mmkit::nn {

void MultiheadAttention::init(const std::string& prefix, int64_t d, int64_t h, Rng& rng,
                              bool pk, int64_t kd, int64_t vd, bool bias) {
  MMKIT_CHECK(h > 0 && d % h == 0, "MultiheadAttention ", prefix, ": dim ", d,
              " not divisible by heads ", h);
  dim = d;
  heads = h;
  kdim = kd > 0 ? kd : d;
  vdim = vd > 0 ? vd : d;
  packed = pk;
  MMKIT_CHECK(!packed || (kdim == d && vdim == d), "MultiheadAttention ", prefix,
              ": packed in_proj needs kdim == vdim == dim");
  has_bias = bias;
  if (packed) {
    in_proj_weight.init(join(prefix, "in_proj_weight"), Shape{3 * d, d}, true);
    init_xavier_uniform(in_proj_weight, rng);
  } else {
    q_proj_weight.init(join(prefix, "q_proj_weight"), Shape{d, d}, true);
    k_proj_weight.init(join(prefix, "k_proj_weight"), Shape{d, kdim}, true);
    v_proj_weight.init(join(prefix, "v_proj_weight"), Shape{d, vdim}, true);
    init_xavier_uniform(q_proj_weight, rng);
    init_xavier_uniform(k_proj_weight, rng);
    init_xavier_uniform(v_proj_weight, rng);
  }
  if (bias) in_proj_bias.init(join(prefix, "in_proj_bias"), Shape{3 * d}, false);
  out_proj.init(join(prefix, "out_proj"), d, d, bias, rng);
  if (bias) init_constant(out_proj.bias, 0.f);  // as PyTorch does
}

void MultiheadAttention::collect(ParamList& out) {
  if (packed) {
    out.push_back(&in_proj_weight);
  } else {
    out.push_back(&q_proj_weight);
    out.push_back(&k_proj_weight);
    out.push_back(&v_proj_weight);
  }
  if (has_bias) out.push_back(&in_proj_bias);
  out_proj.collect(out);
}

Var multihead_attention(Graph& g, MultiheadAttention& m, Var query, Var key, Var value,
                        const AttentionMasks& masks) {
  const int64_t D = m.dim;
  Var bias = m.has_bias ? g.param(m.in_proj_bias) : Var{};
  ag::AttnOptions opt;
  opt.heads = m.heads;
  opt.causal = masks.causal;
  opt.key_padding = masks.key_padding;
  opt.probs_out = masks.probs_out;
  Var ctx;
  if (m.packed && query.id == key.id && key.id == value.id) {
    // Self-attention: one GEMM for q, k and v; heads read from column offsets.
    Var qkv = ag::linear(g, query, g.param(m.in_proj_weight), bias);
    ctx = ag::attention(g, {qkv, 0}, {qkv, D}, {qkv, 2 * D}, D, opt);
  } else {
    // Packed weights: q/k/v use row blocks of in_proj_weight. Separate
    // weights: their own matrices, but the bias is still the packed [3D].
    Var q, k, v;
    if (m.packed) {
      Var W = g.param(m.in_proj_weight);
      q = ag::linear_rows(g, query, W, bias, 0, D);
      k = ag::linear_rows(g, key, W, bias, D, D);
      v = ag::linear_rows(g, value, W, bias, 2 * D, D);
    } else {
      q = ag::linear_rows(g, query, g.param(m.q_proj_weight), bias, 0, D, 0);
      k = ag::linear_rows(g, key, g.param(m.k_proj_weight), bias, 0, D, D);
      v = ag::linear_rows(g, value, g.param(m.v_proj_weight), bias, 0, D, 2 * D);
    }
    ctx = ag::attention(g, {q, 0}, {k, 0}, {v, 0}, D, opt);
  }
  return linear(g, m.out_proj, ctx);
}

Var self_attention(Graph& g, MultiheadAttention& m, Var x, const AttentionMasks& masks) {
  return multihead_attention(g, m, x, x, x, masks);
}

Var cross_attention(Graph& g, MultiheadAttention& m, Var queries, Var context,
                    const AttentionMasks& masks) {
  return multihead_attention(g, m, queries, context, context, masks);
}

}  // namespace mmkit::nn
