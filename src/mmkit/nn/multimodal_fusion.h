// Co-attention fusion stack (ViLBERT, Lu et al. 2019; LXMERT, Tan & Bansal
// 2019): a text stream t [B, Tt, D] and an image stream v [B, Tv, D] that
// exchange information every layer. One layer:
//   1. self-attention within each stream        t = t + SA_t(t),    v = v + SA_v(v)
//   2. cross-attention, both directions from the step-1 states (simultaneous):
//                                               t = t + X_t(t, v),  v = v + X_v(v, t)
//      (X_t: text queries over image keys/values — "text->image"; X_v the reverse)
//   3. a feed-forward network per stream        t = t + FF_t(t),    v = v + FF_v(v)
// Two placements of LayerNorm around each residual sub-layer f:
//   post-norm ("plain residual", BERT/LXMERT): x = LN(x + f(x))
//   pre-norm  (norm_first):                    x = x + f(LN(x)); LN on each stream's output
//             for pre-norm, the cross-attention context is the *normalised* other stream.
// The choice between them is measured (docs/RESULTS.md).
//
// Checkpoint names under <prefix>.layers.{i}: text_self, image_self,
// text_cross, image_cross (CrossModalAttention), text_ff.{fc1,fc2},
// image_ff.{fc1,fc2} (Mlp), text_norm{1,2,3}, image_norm{1,2,3}; pre-norm also
// <prefix>.text_norm, <prefix>.image_norm (final).
#pragma once
#include <vector>

#include "mmkit/nn/cross_modal_attention.h"
#include "mmkit/nn/layer_norm.h"
#include "mmkit/nn/mlp.h"

namespace mmkit::nn {

struct FusionConfig {
  int64_t dim = 64, heads = 4, mlp_dim = 256, layers = 2;
  bool norm_first = true;
  bool zero_init_residual = false;  // o_proj and fc2 weights start at 0 (the stack starts as identity)
  Activation act = Activation::gelu;
  float dropout = 0.f;
  float eps = 1e-5f;
};

struct FusionLayer {
  CrossModalAttention text_self, image_self, text_cross, image_cross;
  Mlp text_ff, image_ff;
  LayerNorm text_norm1, text_norm2, text_norm3, image_norm1, image_norm2, image_norm3;

  void init(const std::string& prefix, const FusionConfig& c, Rng& rng);
  void collect(ParamList& out);
};

struct MultimodalFusion {
  FusionConfig cfg;
  std::vector<FusionLayer> layers;
  LayerNorm text_norm, image_norm;  // final, pre-norm only

  void init(const std::string& prefix, const FusionConfig& c, Rng& rng);
  void collect(ParamList& out);
};

// Attention maps of one fusion pass, for inspection (filled when requested).
struct FusionProbes {
  std::vector<Tensor> text_to_image;  // per layer [B, H, Tt, Tv]
  std::vector<Tensor> image_to_text;  // per layer [B, H, Tv, Tt]
};

struct FusionOut {
  Var text, image;  // [B, Tt, D], [B, Tv, D]
};

// One layer. text_pad: U8 [B, Tt] (nonzero = padding) or null; it masks text
// keys in text self-attention and in image->text cross-attention (padded
// query rows still compute values, which callers ignore when pooling).
FusionOut fusion_layer(Graph& g, FusionLayer& m, const FusionConfig& c, Var text, Var image,
                       const Tensor* text_pad, Tensor* t2i_probs = nullptr, Tensor* i2t_probs = nullptr);

FusionOut multimodal_fusion(Graph& g, MultimodalFusion& m, Var text, Var image, const Tensor* text_pad,
                            FusionProbes* probes = nullptr);

}  // namespace mmkit::nn
