#include "mmkit/nn/transformer_encoder_layer.h"

namespace mmkit::nn {

void TransformerEncoderLayer::init(const std::string& prefix, const EncoderLayerConfig& c,
                                   Rng& rng) {
  cfg = c;
  self_attn.init(join(prefix, "self_attn"), c.dim, c.heads, rng);
  ff.init(join(prefix, "linear1"), join(prefix, "linear2"), c.dim, c.mlp_dim, c.act, c.dropout,
          rng);
  norm1.init(join(prefix, "norm1"), c.dim, c.eps);
  norm2.init(join(prefix, "norm2"), c.dim, c.eps);
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

}  // namespace mmkit::nn
