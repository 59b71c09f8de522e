// Two-layer feed-forward block: fc2(dropout(act(fc1(x)))).
// Field names are the caller's: nn.TransformerEncoderLayer calls them
// linear1/linear2, CLIP's residual blocks mlp.c_fc/mlp.c_proj.
#pragma once
#include "mmkit/autograd/functions.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/module.h"

namespace mmkit::nn {

enum class Activation { gelu, quick_gelu, gelu_tanh };
// "gelu" | "quick_gelu" | "gelu_tanh" (also transformers' names for it: "gelu_pytorch_tanh", "gelu_new")
Activation activation_from_name(const std::string& name);
const char* activation_name(Activation a);

struct Mlp {
  Linear fc1;  // [hidden, D]
  Linear fc2;  // [D, hidden]
  Activation act = Activation::gelu;
  float dropout = 0.f;

  void init(const std::string& fc1_name, const std::string& fc2_name, int64_t D, int64_t hidden,
            Activation act, float dropout, Rng& rng);
  void collect(ParamList& out);
};

Var mlp(Graph& g, Mlp& m, Var x);
Var activation(Graph& g, Activation a, Var x);

}  // namespace mmkit::nn
