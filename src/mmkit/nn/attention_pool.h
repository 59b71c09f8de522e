// Multihead attention pooling ("MAP" head; SigLIP's vision tower, transformers'
// SiglipMultiheadAttentionPoolingHead in models/siglip/modeling_siglip.py): a learned probe
// attends over every token, then a residual MLP on a LayerNorm:
//   h = attn(probe, x, x);  h = h + mlp(ln(h));  out = h[:, 0]
// attn is an nn.MultiheadAttention with packed in_proj (q from the probe, k/v from the tokens).
// Names under <prefix>: probe [1, 1, D], attn.{in_proj_weight, in_proj_bias, out_proj.*},
// ln.{weight, bias}, mlp.{c_fc, c_proj}.{weight, bias}.
#pragma once
#include "mmkit/nn/layer_norm.h"
#include "mmkit/nn/mlp.h"
#include "mmkit/nn/multihead_attention.h"

namespace mmkit::nn {

struct AttentionPool {
  Parameter probe;         // [1, 1, D]
  MultiheadAttention attn;  // packed [3D, D]
  LayerNorm ln;
  Mlp mlp;                 // D -> mlp_dim -> D

  void init(const std::string& prefix, int64_t dim, int64_t heads, int64_t mlp_dim, Activation act, float eps,
            Rng& rng);
  void collect(ParamList& out);
};

// x [B, T, D] -> [B, D]
Var attention_pool(Graph& g, AttentionPool& m, Var x);

}  // namespace mmkit::nn
