#include "mmkit/nn/patch_embedding.h"

#include <cmath>

namespace mmkit::nn {

void PatchEmbedding::init(const std::string& prefix, int64_t C, int64_t D, int64_t p,
                          bool with_bias, Rng& rng) {
  patch = p;
  float a = 1.f / std::sqrt(float(C * p * p));
  weight.init(join(prefix, "weight"), Shape{D, C, p, p}, true);
  init_uniform(weight, a, rng);
  has_bias = with_bias;
  if (with_bias) {
    bias.init(join(prefix, "bias"), Shape{D}, false);
    init_uniform(bias, a, rng);
  }
}

void PatchEmbedding::collect(ParamList& out) {
  out.push_back(&weight);
  if (has_bias) out.push_back(&bias);
}

Var patch_embedding(Graph& g, PatchEmbedding& m, Var images) {
  return ag::patch_embed(g, images, g.param(m.weight), m.has_bias ? g.param(m.bias) : Var{},
                         m.patch);
}

}  // namespace mmkit::nn
