// Conventions shared by the nn/ blocks.
//
// A block is a plain struct of Parameters (each carrying its checkpoint name
// and shape) plus:
//   init(prefix, dims..., rng)  - names parameters "<prefix>.<field>" and
//                                 initialises them (PyTorch's defaults unless
//                                 the model says otherwise)
//   collect(std::vector<Parameter*>&) - appends its parameters in a fixed order
// and a free forward function taking a Graph. There is no module base class
// or registry: models are structs of blocks, readable top to bottom.
#pragma once
#include <string>
#include <vector>

#include "mmkit/autograd/parameter.h"
#include "mmkit/core/rng.h"

namespace mmkit::nn {

using ParamList = std::vector<Parameter*>;

inline std::string join(const std::string& prefix, const char* field) {
  return prefix.empty() ? std::string(field) : prefix + "." + field;
}

// Fills with U(-a, a).
void init_uniform(Parameter& p, float a, Rng& rng);
// Fills with N(0, std) truncated to [-2 std, 2 std] (timm's ViT init).
void init_trunc_normal(Parameter& p, float std, Rng& rng);
void init_constant(Parameter& p, float v);
// Xavier/Glorot uniform over a [fan_out, fan_in] matrix (PyTorch's
// MultiheadAttention in_proj init).
void init_xavier_uniform(Parameter& p, Rng& rng);

}  // namespace mmkit::nn
