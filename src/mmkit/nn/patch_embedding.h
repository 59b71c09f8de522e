// Conv2d patch embedding (kernel = stride = patch): weight [D, C, p, p],
// bias [D] (optional: CLIP's conv1 has none). Output [B, (H/p)*(W/p), D].
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct PatchEmbedding {
  Parameter weight;  // [D, C, p, p]
  Parameter bias;    // [D]
  bool has_bias = true;
  int64_t patch = 16;

  // PyTorch Conv2d default init: U(+-1/sqrt(C*p*p)).
  void init(const std::string& prefix, int64_t C, int64_t D, int64_t patch, bool bias, Rng& rng);
  void collect(ParamList& out);
};

Var patch_embedding(Graph& g, PatchEmbedding& m, Var images);

}  // namespace mmkit::nn
