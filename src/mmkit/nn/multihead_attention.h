// nn.MultiheadAttention (batch_first), self- and cross-attention.
//
// Two weight layouts, both with PyTorch's names:
//   packed    in_proj_weight [3D, D]            (kdim == vdim == D)
//   separate  q_proj_weight [D, D], k_proj_weight [D, kdim], v_proj_weight [D, vdim]
// plus in_proj_bias [3D] and out_proj (Linear D -> D) in both.
// Heads are read in place from the projections (see ops/attention.h); for
// packed self-attention a single [B, T, 3D] GEMM produces q, k and v.
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct MultiheadAttention {
  int64_t dim = 0, heads = 1, kdim = 0, vdim = 0;
  bool packed = true;
  bool has_bias = true;
  Parameter in_proj_weight;                               // [3D, D] (packed)
  Parameter q_proj_weight, k_proj_weight, v_proj_weight;  // separate layout
  Parameter in_proj_bias;                                 // [3D]
  Linear out_proj;                                        // [D, D]

  // kdim/vdim <= 0 mean D. packed requires kdim == vdim == D.
  void init(const std::string& prefix, int64_t dim, int64_t heads, Rng& rng, bool packed = true,
            int64_t kdim = 0, int64_t vdim = 0, bool bias = true);
  void collect(ParamList& out);
};

struct AttentionMasks {
  bool causal = false;
  const Tensor* key_padding = nullptr;  // U8 [B, Tk], nonzero = ignore that key
  Tensor* probs_out = nullptr;          // receives the attention maps [B, H, Tq, Tk]
};

// x [B, T, D] -> [B, T, D]
Var self_attention(Graph& g, MultiheadAttention& m, Var x, const AttentionMasks& masks = {});
// queries [B, Tq, D], context [B, Tk, kdim] (keys and values from the same
// context) -> [B, Tq, D]
Var cross_attention(Graph& g, MultiheadAttention& m, Var queries, Var context,
                    const AttentionMasks& masks = {});
// General form: separate key and value sources [B, Tk, kdim], [B, Tk, vdim].
Var multihead_attention(Graph& g, MultiheadAttention& m, Var query, Var key, Var value,
                        const AttentionMasks& masks = {});

}  // namespace mmkit::nn
