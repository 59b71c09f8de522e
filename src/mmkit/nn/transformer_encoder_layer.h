// nn.TransformerEncoderLayer (batch_first), both normalisation placements:
//   post-norm (PyTorch default, norm_first=False):
//       x = norm1(x + drop(self_attn(x)));  x = norm2(x + drop(ff(x)))
//   pre-norm (norm_first=True; ViT, CLIP):
//       x = x + drop(self_attn(norm1(x)));  x = x + drop(ff(norm2(x)))
// with ff = linear2(drop(act(linear1(x)))). Checkpoint names under <prefix>:
// self_attn.{in_proj_weight,in_proj_bias,out_proj.*}, linear1.*, linear2.*,
// norm1.*, norm2.*
#pragma once
#include "mmkit/nn/layer_norm.h"
#include "mmkit/nn/mlp.h"
#include "mmkit/nn/multihead_attention.h"

namespace mmkit::nn {

struct EncoderLayerConfig {
  int64_t dim = 64, heads = 4, mlp_dim = 256;
  Activation act = Activation::gelu;
  bool norm_first = false;
  float dropout = 0.f;
  float eps = 1e-5f;
};

// Checkpoint field names inside a layer; the defaults are PyTorch's
// nn.TransformerEncoderLayer, clip_names() OpenAI CLIP's ResidualAttentionBlock.
struct EncoderLayerNames {
  std::string attn = "self_attn", fc1 = "linear1", fc2 = "linear2", norm1 = "norm1", norm2 = "norm2";
  static EncoderLayerNames clip_names() { return {"attn", "mlp.c_fc", "mlp.c_proj", "ln_1", "ln_2"}; }
};

struct TransformerEncoderLayer {
  EncoderLayerConfig cfg;
  MultiheadAttention self_attn;
  Mlp ff;  // linear1 / linear2
  LayerNorm norm1, norm2;

  void init(const std::string& prefix, const EncoderLayerConfig& cfg, Rng& rng,
            const EncoderLayerNames& names = {});
  void collect(ParamList& out);
};

// x [B, T, D] -> [B, T, D]
Var transformer_encoder_layer(Graph& g, TransformerEncoderLayer& m, Var x,
                              const AttentionMasks& masks = {});

// The same layer's output at one position t only: x [B, T, D] -> [B, 1, D].
// For a last layer whose other positions are thrown away (CLIP's and ViT's
// class-token pooling): keys and values still come from all T tokens, but the
// query, attention row, out-projection and MLP run for one row per image, and
// so do their backward passes. Equal to transformer_encoder_layer's row t.
// With a causal mask only t = T - 1 is allowed.
Var transformer_encoder_layer_at(Graph& g, TransformerEncoderLayer& m, Var x, int64_t t,
                                 const AttentionMasks& masks = {});

}  // namespace mmkit::nn
