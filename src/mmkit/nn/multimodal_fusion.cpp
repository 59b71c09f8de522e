#include "mmkit/nn/multimodal_fusion.h"

namespace mmkit::nn {

void FusionLayer::init(const std::string& p, const FusionConfig& c, Rng& rng) {
  text_self.init(join(p, "text_self"), c.dim, c.heads, rng);
  image_self.init(join(p, "image_self"), c.dim, c.heads, rng);
  text_cross.init(join(p, "text_cross"), c.dim, c.heads, rng);
  image_cross.init(join(p, "image_cross"), c.dim, c.heads, rng);
  text_ff.init(join(p, "text_ff.fc1"), join(p, "text_ff.fc2"), c.dim, c.mlp_dim, c.act, c.dropout, rng);
  image_ff.init(join(p, "image_ff.fc1"), join(p, "image_ff.fc2"), c.dim, c.mlp_dim, c.act, c.dropout, rng);
  text_norm1.init(join(p, "text_norm1"), c.dim, c.eps);
  text_norm2.init(join(p, "text_norm2"), c.dim, c.eps);
  text_norm3.init(join(p, "text_norm3"), c.dim, c.eps);
  image_norm1.init(join(p, "image_norm1"), c.dim, c.eps);
  image_norm2.init(join(p, "image_norm2"), c.dim, c.eps);
  image_norm3.init(join(p, "image_norm3"), c.dim, c.eps);
  if (c.zero_init_residual) {
    // Every residual branch starts as zero, so the stack starts as the identity and the
    // model as late fusion of the two encoders (as Flamingo's zero-gated cross-attention,
    // and zero-init residuals in ResNets); measured in docs/RESULTS.md.
    for (auto* a : {&text_self, &image_self, &text_cross, &image_cross}) init_constant(a->o_proj.weight, 0.f);
    for (Mlp* f : {&text_ff, &image_ff}) {
      init_constant(f->fc2.weight, 0.f);
      init_constant(f->fc2.bias, 0.f);
    }
  }
}

void FusionLayer::collect(ParamList& out) {
  for (auto* a : {&text_self, &image_self, &text_cross, &image_cross}) a->collect(out);
  text_ff.collect(out);
  image_ff.collect(out);
  for (auto* n : {&text_norm1, &text_norm2, &text_norm3, &image_norm1, &image_norm2, &image_norm3})
    n->collect(out);
}

void MultimodalFusion::init(const std::string& prefix, const FusionConfig& c, Rng& rng) {
  MMKIT_CHECK(c.layers >= 0 && c.dim > 0 && c.mlp_dim > 0, "fusion config: bad sizes (layers ",
              c.layers, ", dim ", c.dim, ", mlp_dim ", c.mlp_dim, ")");
  cfg = c;
  layers.clear();
  layers.resize(size_t(c.layers));
  for (int64_t i = 0; i < c.layers; ++i)
    layers[size_t(i)].init(join(prefix, "layers") + "." + std::to_string(i), c, rng);
  if (c.norm_first) {
    text_norm.init(join(prefix, "text_norm"), c.dim, c.eps);
    image_norm.init(join(prefix, "image_norm"), c.dim, c.eps);
  }
}

void MultimodalFusion::collect(ParamList& out) {
  for (auto& l : layers) l.collect(out);
  if (cfg.norm_first) {
    text_norm.collect(out);
    image_norm.collect(out);
  }
}

FusionOut fusion_layer(Graph& g, FusionLayer& m, const FusionConfig& c, Var t, Var v,
                       const Tensor* text_pad, Tensor* t2i_probs, Tensor* i2t_probs) {
  const float p = c.dropout;
  auto res = [&](Var x, Var h) { return ag::add(g, x, ag::dropout(g, h, p)); };
  CrossAttentionOptions text_keys{text_pad, nullptr};
  CrossAttentionOptions t2i{nullptr, t2i_probs}, i2t{text_pad, i2t_probs};
  if (c.norm_first) {
    Var tn = layer_norm(g, m.text_norm1, t), vn = layer_norm(g, m.image_norm1, v);
    t = res(t, cross_modal_attention(g, m.text_self, tn, tn, text_keys));
    v = res(v, cross_modal_attention(g, m.image_self, vn, vn));
    tn = layer_norm(g, m.text_norm2, t);
    vn = layer_norm(g, m.image_norm2, v);
    Var t_new = res(t, cross_modal_attention(g, m.text_cross, tn, vn, t2i));
    Var v_new = res(v, cross_modal_attention(g, m.image_cross, vn, tn, i2t));
    t = res(t_new, mlp(g, m.text_ff, layer_norm(g, m.text_norm3, t_new)));
    v = res(v_new, mlp(g, m.image_ff, layer_norm(g, m.image_norm3, v_new)));
    return {t, v};
  }
  t = layer_norm(g, m.text_norm1, res(t, cross_modal_attention(g, m.text_self, t, t, text_keys)));
  v = layer_norm(g, m.image_norm1, res(v, cross_modal_attention(g, m.image_self, v, v)));
  Var t_new = layer_norm(g, m.text_norm2, res(t, cross_modal_attention(g, m.text_cross, t, v, t2i)));
  Var v_new = layer_norm(g, m.image_norm2, res(v, cross_modal_attention(g, m.image_cross, v, t, i2t)));
  t = layer_norm(g, m.text_norm3, res(t_new, mlp(g, m.text_ff, t_new)));
  v = layer_norm(g, m.image_norm3, res(v_new, mlp(g, m.image_ff, v_new)));
  return {t, v};
}

FusionOut multimodal_fusion(Graph& g, MultimodalFusion& m, Var text, Var image, const Tensor* text_pad,
                            FusionProbes* probes) {
  if (probes) {
    probes->text_to_image.assign(m.layers.size(), Tensor());
    probes->image_to_text.assign(m.layers.size(), Tensor());
  }
  FusionOut s{text, image};
  for (size_t i = 0; i < m.layers.size(); ++i)
    s = fusion_layer(g, m.layers[i], m.cfg, s.text, s.image, text_pad,
                     probes ? &probes->text_to_image[i] : nullptr, probes ? &probes->image_to_text[i] : nullptr);
  if (m.cfg.norm_first) {
    s.text = layer_norm(g, m.text_norm, s.text);
    s.image = layer_norm(g, m.image_norm, s.image);
  }
  return s;
}

}  // namespace mmkit::nn
