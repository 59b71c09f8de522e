// nn.Embedding: weight [V, D] ("<prefix>.weight"); no weight decay.
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

struct Embedding {
  Parameter weight;  // [V, D], init N(0, std)

  void init(const std::string& prefix, int64_t V, int64_t D, float std, Rng& rng);
  void collect(ParamList& out) { out.push_back(&weight); }
};

// ids: I32 [...] -> [..., D]
Var embedding(Graph& g, Embedding& m, const Tensor& ids);

}  // namespace mmkit::nn
