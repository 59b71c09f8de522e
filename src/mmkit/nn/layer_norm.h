// nn.LayerNorm over the last axis: weight [D], bias [D], eps (1e-5 default).
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct LayerNorm {
  Parameter weight;  // [D], init 1, no weight decay
  Parameter bias;    // [D], init 0, no weight decay
  float eps = 1e-5f;

  void init(const std::string& prefix, int64_t D, float eps = 1e-5f);
  void collect(ParamList& out);
};

Var layer_norm(Graph& g, LayerNorm& m, Var x);

}  // namespace mmkit::nn
