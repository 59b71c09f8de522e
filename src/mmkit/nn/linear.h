// nn.Linear: weight [out, in] ("<prefix>.weight"), bias [out] ("<prefix>.bias").
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct Linear {
  Parameter weight;  // [out, in]
  Parameter bias;    // [out]; absent (undefined value) when has_bias is false
  bool has_bias = true;

  // PyTorch's default init: U(+-1/sqrt(in)) for weight and bias.
  void init(const std::string& prefix, int64_t in, int64_t out, bool bias, Rng& rng);
  void collect(ParamList& out);
  int64_t in_features() const { return weight.value.dim(1); }
  int64_t out_features() const { return weight.value.dim(0); }
};

Var linear(Graph& g, Linear& m, Var x);
Var linear_relu(Graph& g, Linear& m, Var x);  // relu(linear(x)), fused (ag::linear_relu)

}  // namespace mmkit::nn
