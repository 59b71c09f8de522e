#include "mmkit/nn/module.h"

#include <cmath>

namespace mmkit::nn {

void init_uniform(Parameter& p, float a, Rng& rng) {
  if (!p.value.defined()) return;  // shape-only construction
  float* d = p.value.f32();
  for (int64_t i = 0, n = p.value.numel(); i < n; ++i) d[i] = (2.f * rng.uniform() - 1.f) * a;
}

void init_trunc_normal(Parameter& p, float std, Rng& rng) {
  if (!p.value.defined()) return;
  float* d = p.value.f32();
  for (int64_t i = 0, n = p.value.numel(); i < n; ++i) {
    float v;
    do v = rng.normal();
    while (v < -2.f || v > 2.f);
    d[i] = v * std;
  }
}

void init_constant(Parameter& p, float v) {
  if (p.value.defined()) p.value.fill(v);
}

void init_xavier_uniform(Parameter& p, Rng& rng) {
  if (!p.value.defined()) return;
  const Shape& s = p.value.shape();
  float fan_out = float(s[0]), fan_in = float(p.value.numel() / s[0]);
  init_uniform(p, std::sqrt(6.f / (fan_in + fan_out)), rng);
}

}  // namespace mmkit::nn
