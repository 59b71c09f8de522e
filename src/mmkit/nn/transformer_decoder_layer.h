// nn.TransformerDecoderLayer (batch_first), both normalisation placements,
// with the causal self-attention mask always on (a caption decoder):
//   post-norm (PyTorch default, norm_first=False):
//       x = norm1(x + drop(self_attn(x, causal)))
//       x = norm2(x + drop(multihead_attn(x, memory)))
//       x = norm3(x + drop(ff(x)))
//   pre-norm (norm_first=True):
//       x = x + drop(self_attn(norm1(x), causal))
//       x = x + drop(multihead_attn(norm2(x), memory))
//       x = x + drop(ff(norm3(x)))
// with ff = linear2(drop(act(linear1(x)))). Checkpoint names under <prefix>
// are PyTorch's: self_attn.{in_proj_weight [3D,D], in_proj_bias [3D],
// out_proj.*}, multihead_attn.{same; packed because kdim = vdim = D},
// linear1.{weight [F,D], bias [F]}, linear2.{weight [D,F], bias [D]},
// norm1/norm2/norm3.{weight, bias} [D].
// Shape letters: B batch, T target tokens, M memory tokens, D width, F ff width.
#pragma once
#include "mmkit/nn/layer_norm.h"
#include "mmkit/nn/mlp.h"
#include "mmkit/nn/multihead_attention.h"

namespace mmkit::nn {

struct DecoderLayerConfig {
  int64_t dim = 64, heads = 4, mlp_dim = 256;
  Activation act = Activation::gelu;
  bool norm_first = false;
  float dropout = 0.f;
  float eps = 1e-5f;
};

struct TransformerDecoderLayer {
  DecoderLayerConfig cfg;
  MultiheadAttention self_attn;       // causal, over the target tokens
  MultiheadAttention multihead_attn;  // cross: queries from x, keys/values from memory
  Mlp ff;                             // linear1 / linear2
  LayerNorm norm1, norm2, norm3;

  void init(const std::string& prefix, const DecoderLayerConfig& cfg, Rng& rng);
  void collect(ParamList& out);
};

struct DecoderMasks {
  const Tensor* tgt_key_padding = nullptr;     // U8 [B, T], nonzero = padding token
  const Tensor* memory_key_padding = nullptr;  // U8 [B, M]
  Tensor* cross_probs_out = nullptr;           // receives cross-attention maps [B, H, T, M]
};

// x [B, T, D], memory [B, M, D] -> [B, T, D]
Var transformer_decoder_layer(Graph& g, TransformerDecoderLayer& m, Var x, Var memory,
                              const DecoderMasks& masks = {});

}  // namespace mmkit::nn
