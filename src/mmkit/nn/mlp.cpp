#include "mmkit/nn/mlp.h"

namespace mmkit::nn {

Activation activation_from_name(const std::string& n) {
  if (n == "gelu") return Activation::gelu;
  if (n == "quick_gelu") return Activation::quick_gelu;
  fail("unknown activation '", n, "' (expected gelu or quick_gelu)");
}

const char* activation_name(Activation a) {
  return a == Activation::gelu ? "gelu" : "quick_gelu";
}

void Mlp::init(const std::string& fc1_name, const std::string& fc2_name, int64_t D,
               int64_t hidden, Activation a, float p, Rng& rng) {
  fc1.init(fc1_name, D, hidden, true, rng);
  fc2.init(fc2_name, hidden, D, true, rng);
  act = a;
  dropout = p;
}

void Mlp::collect(ParamList& out) {
  fc1.collect(out);
  fc2.collect(out);
}

Var activation(Graph& g, Activation a, Var x) {
  return a == Activation::gelu ? ag::gelu(g, x) : ag::quick_gelu(g, x);
}

Var mlp(Graph& g, Mlp& m, Var x) {
  Var h = activation(g, m.act, linear(g, m.fc1, x));
  return linear(g, m.fc2, ag::dropout(g, h, m.dropout));
}

}  // namespace mmkit::nn
