// A trainable tensor with its checkpoint name and its gradient buffer.
#pragma once
#include <string>

#include "mmkit/core/tensor.h"

namespace mmkit {

struct Parameter {
  std::string name;       // checkpoint name, e.g. "encoder.layers.0.linear1.weight"
  Tensor value;           // owned (training) or a view into a mapped checkpoint (inference)
  Tensor grad;            // same shape; allocated by alloc_grad(), zeroed by the optimizer
  bool decay = true;      // AdamW weight decay applies (false for norms, biases, embeddings)
  bool trainable = true;  // frozen parameters get no gradient

  void init(std::string n, const Shape& s, bool with_decay) {
    name = std::move(n);
    value = Tensor::zeros(s);
    decay = with_decay;
  }
  void alloc_grad() {
    if (!grad.defined() || grad.shape() != value.shape()) grad = Tensor::zeros(value.shape());
  }
};

}  // namespace mmkit
