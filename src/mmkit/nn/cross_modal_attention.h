// Cross-modal attention (ViLBERT / LXMERT co-attention): queries come from one
// modality, keys and values from the other, each through its own projection.
//
//   nn::CrossModalAttention xa;
//   xa.init("text_cross", /*dim=*/64, /*heads=*/4, rng);            // context width = dim
//   Tensor probs;                                                   // optional inspection
//   Var t2 = nn::cross_modal_attention(g, xa, text, image, {nullptr, &probs});
//
// Checkpoint names under <prefix>: q_proj.{weight [D, D], bias [D]},
// k_proj.{weight [D, Dc], bias [D]}, v_proj.{weight [D, Dc], bias [D]},
// o_proj.{weight [D, D], bias [D]}. Self-attention is the same block with
// the context equal to the queries. Shapes: B batch, Tq query tokens, Tk
// context tokens, D width, Dc context width, H heads.
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct CrossModalAttention {
  int64_t dim = 0, heads = 1, context_dim = 0;
  Linear q_proj;  // [D, D]
  Linear k_proj;  // [D, Dc]
  Linear v_proj;  // [D, Dc]
  Linear o_proj;  // [D, D]

  // context_dim <= 0 means dim. dim must be divisible by heads. Weights:
  // Xavier-uniform (as nn.MultiheadAttention), biases 0.
  void init(const std::string& prefix, int64_t dim, int64_t heads, Rng& rng, int64_t context_dim = 0);
  void collect(ParamList& out);
};

struct CrossAttentionOptions {
  const Tensor* key_padding = nullptr;  // U8 [B, Tk], nonzero = that context token is ignored
  Tensor* probs_out = nullptr;          // receives the attention maps [B, H, Tq, Tk]
};

// queries [B, Tq, D], context [B, Tk, Dc] -> [B, Tq, D]
Var cross_modal_attention(Graph& g, CrossModalAttention& m, Var queries, Var context,
                          const CrossAttentionOptions& opt = {});

}  // namespace mmkit::nn
