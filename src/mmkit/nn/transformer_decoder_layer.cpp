#include "mmkit/nn/transformer_decoder_layer.h"

namespace mmkit::nn {

void TransformerDecoderLayer::init(const std::string& prefix, const DecoderLayerConfig& c, Rng& rng) {
  cfg = c;
  self_attn.init(join(prefix, "self_attn"), c.dim, c.heads, rng);
  multihead_attn.init(join(prefix, "multihead_attn"), c.dim, c.heads, rng);
  ff.init(join(prefix, "linear1"), join(prefix, "linear2"), c.dim, c.mlp_dim, c.act, c.dropout, rng);
  norm1.init(join(prefix, "norm1"), c.dim, c.eps);
  norm2.init(join(prefix, "norm2"), c.dim, c.eps);
  norm3.init(join(prefix, "norm3"), c.dim, c.eps);
}

void TransformerDecoderLayer::collect(ParamList& out) {
  self_attn.collect(out);
  multihead_attn.collect(out);
  ff.collect(out);
  norm1.collect(out);
  norm2.collect(out);
  norm3.collect(out);
}

Var transformer_decoder_layer(Graph& g, TransformerDecoderLayer& m, Var x, Var memory,
                              const DecoderMasks& masks) {
  const float p = m.cfg.dropout;
  AttentionMasks self_masks;
  self_masks.causal = true;
  self_masks.key_padding = masks.tgt_key_padding;
  AttentionMasks cross_masks;
  cross_masks.key_padding = masks.memory_key_padding;
  cross_masks.probs_out = masks.cross_probs_out;
  if (m.cfg.norm_first) {
    Var h = self_attention(g, m.self_attn, layer_norm(g, m.norm1, x), self_masks);
    x = ag::add(g, x, ag::dropout(g, h, p));
    h = cross_attention(g, m.multihead_attn, layer_norm(g, m.norm2, x), memory, cross_masks);
    x = ag::add(g, x, ag::dropout(g, h, p));
    h = mlp(g, m.ff, layer_norm(g, m.norm3, x));
    return ag::add(g, x, ag::dropout(g, h, p));
  }
  Var h = self_attention(g, m.self_attn, x, self_masks);
  x = layer_norm(g, m.norm1, ag::add(g, x, ag::dropout(g, h, p)));
  h = cross_attention(g, m.multihead_attn, x, memory, cross_masks);
  x = layer_norm(g, m.norm2, ag::add(g, x, ag::dropout(g, h, p)));
  h = mlp(g, m.ff, x);
  return layer_norm(g, m.norm3, ag::add(g, x, ag::dropout(g, h, p)));
}

}  // namespace mmkit::nn
