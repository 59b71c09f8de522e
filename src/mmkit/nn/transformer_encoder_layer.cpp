#include "mmkit/nn/transformer_encoder_layer.h"

#include "mmkit/autograd/functions.h"
#include "mmkit/core/error.h"

namespace mmkit::nn {

void TransformerEncoderLayer::init(const std::string& prefix, const EncoderLayerConfig& c,
                                   Rng& rng, const EncoderLayerNames& n) {
  cfg = c;
  self_attn.init(join(prefix, n.attn.c_str()), c.dim, c.heads, rng);
  ff.init(join(prefix, n.fc1.c_str()), join(prefix, n.fc2.c_str()), c.dim, c.mlp_dim, c.act,
          c.dropout, rng);
  norm1.init(join(prefix, n.norm1.c_str()), c.dim, c.eps);
  norm2.init(join(prefix, n.norm2.c_str()), c.dim, c.eps);
}

void TransformerEncoderLayer::collect(ParamList& out) {
  self_attn.collect(out);
  ff.collect(out);
  norm1.collect(out);
  norm2.collect(out);
}

Var transformer_encoder_layer(Graph& g, TransformerEncoderLayer& m, Var x,
                              const AttentionMasks& masks) {
  const float p = m.cfg.dropout;
  if (m.cfg.norm_first) {
    Var h = self_attention(g, m.self_attn, layer_norm(g, m.norm1, x), masks);
    x = ag::add(g, x, ag::dropout(g, h, p));
    h = mlp(g, m.ff, layer_norm(g, m.norm2, x));
    return ag::add(g, x, ag::dropout(g, h, p));
  }
  Var h = self_attention(g, m.self_attn, x, masks);
  x = layer_norm(g, m.norm1, ag::add(g, x, ag::dropout(g, h, p)));
  h = mlp(g, m.ff, x);
  return layer_norm(g, m.norm2, ag::add(g, x, ag::dropout(g, h, p)));
}

Var transformer_encoder_layer_at(Graph& g, TransformerEncoderLayer& m, Var x, int64_t t,
                                 const AttentionMasks& masks) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3 && t >= 0 && t < s[1], "encoder layer: position ", t, " of ", s.str());
  MMKIT_CHECK(!masks.causal || t == s[1] - 1, "encoder layer: a causal layer's single-row output must be its last "
              "position, got ", t, " of ", s[1]);
  const float p = m.cfg.dropout;
  const Shape row{s[0], 1, s[2]};
  auto at = [&](Var v) { return ag::reshape(g, ag::select_token(g, v, t), row); };  // [B, 1, D]
  Var xt = at(x);
  if (m.cfg.norm_first) {
    Var hx = layer_norm(g, m.norm1, x);
    Var h = multihead_attention(g, m.self_attn, at(hx), hx, hx, masks);
    xt = ag::add(g, xt, ag::dropout(g, h, p));
    h = mlp(g, m.ff, layer_norm(g, m.norm2, xt));
    return ag::add(g, xt, ag::dropout(g, h, p));
  }
  Var h = multihead_attention(g, m.self_attn, xt, x, x, masks);
  xt = layer_norm(g, m.norm1, ag::add(g, xt, ag::dropout(g, h, p)));
  h = mlp(g, m.ff, xt);
  return layer_norm(g, m.norm2, ag::add(g, xt, ag::dropout(g, h, p)));
}

}  // namespace mmkit::nn
