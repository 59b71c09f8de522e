#include "mmkit/nn/transformer_encoder_layer.h"

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

}  // namespace mmkit::nn
