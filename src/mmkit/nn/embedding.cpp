#include "mmkit/nn/embedding.h"

namespace mmkit::nn {

void Embedding::init(const std::string& prefix, int64_t V, int64_t D, float std, Rng& rng) {
  weight.init(join(prefix, "weight"), Shape{V, D}, false);
  if (!weight.value.defined()) return;
  float* d = weight.value.f32();
  for (int64_t i = 0, n = weight.value.numel(); i < n; ++i) d[i] = rng.normal() * std;
}

Var embedding(Graph& g, Embedding& m, const Tensor& ids) {
  return ag::embedding(g, g.param(m.weight), ids);
}

}  // namespace mmkit::nn
