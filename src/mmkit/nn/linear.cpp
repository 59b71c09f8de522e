#include "mmkit/nn/linear.h"

#include <cmath>

namespace mmkit::nn {

void Linear::init(const std::string& prefix, int64_t in, int64_t out, bool with_bias, Rng& rng) {
  weight.init(join(prefix, "weight"), Shape{out, in}, true);
  init_uniform(weight, 1.f / std::sqrt(float(in)), rng);
  has_bias = with_bias;
  if (with_bias) {
    bias.init(join(prefix, "bias"), Shape{out}, false);
    init_uniform(bias, 1.f / std::sqrt(float(in)), rng);
  }
}

void Linear::collect(ParamList& out) {
  out.push_back(&weight);
  if (has_bias) out.push_back(&bias);
}

Var linear(Graph& g, Linear& m, Var x) {
  return ag::linear(g, x, g.param(m.weight), m.has_bias ? g.param(m.bias) : Var{});
}

Var linear_relu(Graph& g, Linear& m, Var x) {
  return ag::linear_relu(g, x, g.param(m.weight), m.has_bias ? g.param(m.bias) : Var{});
}

}  // namespace mmkit::nn
