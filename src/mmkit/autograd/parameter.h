// A trainable tensor with its checkpoint name and its gradient buffer.
#pragma once
#include <string>

#include "mmkit/core/tensor.h"

namespace mmkit {

// While a ShapeOnlyScope is alive on this thread, Parameter::init records
// shapes without allocating (values stay null): loaders use it to build a
// model's structure and then bind the checkpoint's tensors, instead of first
// filling hundreds of MB with random numbers that are thrown away.
struct ShapeOnlyScope {
  ShapeOnlyScope() { active() = true; }
  ~ShapeOnlyScope() { active() = false; }
  static bool& active() {
    static thread_local bool on = false;
    return on;
  }
};

struct Parameter {
  std::string name;       // checkpoint name, e.g. "encoder.layers.0.linear1.weight"
  Tensor value;           // owned (training) or a view into a mapped checkpoint (inference)
  Tensor grad;            // same shape; allocated by alloc_grad(), zeroed by the optimizer
  bool decay = true;      // AdamW weight decay applies (false for norms, biases, embeddings)
  bool trainable = true;  // frozen parameters get no gradient

  void init(std::string n, const Shape& s, bool with_decay) {
    name = std::move(n);
    value = ShapeOnlyScope::active() ? Tensor::view(nullptr, s, DType::f32) : Tensor::zeros(s);
    decay = with_decay;
  }
  void alloc_grad() {
    if (!grad.defined() || grad.shape() != value.shape()) grad = Tensor::zeros(value.shape());
  }
};

}  // namespace mmkit
