#include "mmkit/nn/layer_norm.h"

namespace mmkit::nn {

void LayerNorm::init(const std::string& prefix, int64_t D, float e) {
  weight.init(join(prefix, "weight"), Shape{D}, false);
  init_constant(weight, 1.f);
  bias.init(join(prefix, "bias"), Shape{D}, false);
  eps = e;
}

void LayerNorm::collect(ParamList& out) {
  out.push_back(&weight);
  out.push_back(&bias);
}

Var layer_norm(Graph& g, LayerNorm& m, Var x) {
  return ag::layernorm(g, x, g.param(m.weight), g.param(m.bias), m.eps);
}

}  // namespace mmkit::nn
