#include "mmkit/nn/mlp.h"

namespace mmkit::nn {

Activation activation_from_name(const std::string& n) {
  if (n == "gelu") return Activation::gelu;
  if (n == "quick_gelu") return Activation::quick_gelu;
  if (n == "gelu_tanh" || n == "gelu_pytorch_tanh" || n == "gelu_new") return Activation::gelu_tanh;
  fail("unknown activation '", n, "' (expected gelu, quick_gelu or gelu_tanh)");
}

const char* activation_name(Activation a) {
  return a == Activation::gelu ? "gelu" : a == Activation::quick_gelu ? "quick_gelu" : "gelu_tanh";
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
  switch (a) {
    case Activation::gelu: return ag::gelu(g, x);
    case Activation::quick_gelu: return ag::quick_gelu(g, x);
    case Activation::gelu_tanh: return ag::gelu_tanh(g, x);
  }
  return x;
}

Var mlp(Graph& g, Mlp& m, Var x) {
  Var h = activation(g, m.act, linear(g, m.fc1, x));
  return linear(g, m.fc2, ag::dropout(g, h, m.dropout));
}

}  // namespace mmkit::nn
