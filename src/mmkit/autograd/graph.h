// Reverse-mode autograd tape.
//
// A Graph records, for one forward pass, every op whose inputs need
// gradients: a Node holds the op's backward function (a free function in
// autograd/functions.cpp that calls the op's backward kernel in ops/), its
// input/output value ids and what the forward saved. backward() walks the
// nodes in reverse. Values and gradients live in the Graph's Arena, so after
// the first step a training step allocates nothing: reset() rewinds the arena
// and clears the tape (vectors keep their capacity).
//
// Gradients accumulate (+=) into zero-initialised buffers; a parameter's
// gradient buffer is its Parameter::grad, so gradients of a whole step
// (or of several micro-batches) add up there until the optimizer zeroes them.
#pragma once
#include <cstdint>
#include <vector>

#include "mmkit/autograd/parameter.h"
#include "mmkit/core/arena.h"
#include "mmkit/core/tensor.h"

namespace mmkit {

struct Var {
  int id = -1;
  bool valid() const { return id >= 0; }
};

class Graph;
struct Node;
using BackwardFn = void (*)(Graph&, const Node&);

struct Node {
  BackwardFn backward = nullptr;
  int out = -1;
  int in[4] = {-1, -1, -1, -1};
  Tensor saved[3];     // op-specific (softmax output, layernorm stats, masks ...)
  float f[2] = {0, 0};
  int64_t i[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
};

class Graph {
 public:
  explicit Graph(Arena& arena) : arena_(&arena) {}

  // Clears the tape and rewinds the arena: every Var and arena tensor of the
  // previous pass becomes invalid.
  void reset();

  Var constant(const Tensor& t);  // never needs a gradient
  Var leaf(const Tensor& t);      // needs a gradient, read back with grad()
  Var param(Parameter& p);        // gradient accumulates into p.grad if trainable

  const Tensor& value(Var v) const { return slots_[v.id].value; }
  float* data(Var v) const { return slots_[v.id].value.f32(); }
  const Shape& shape(Var v) const { return slots_[v.id].value.shape(); }
  bool requires_grad(Var v) const { return slots_[v.id].requires_grad; }
  // Gradient buffer of v (allocated zeroed on first use); null pointer if v
  // does not need a gradient.
  float* grad_ptr(int id);
  Tensor grad(Var v);
  // For shape-only ops (reshape) in a backward: when `in` needs a gradient and has no buffer yet,
  // it takes over `out`'s (same element count) instead of a zeroed buffer plus a copy; returns
  // false when nothing changed. The two share the buffer from then on, so `out`'s gradient also
  // shows what later nodes add to `in`'s (only matters when inspecting intermediates).
  bool alias_grad(int in, int out);

  void backward(Var loss);
  // Backward from a non-scalar output with upstream gradient `seed` (same shape).
  void backward(Var out, const Tensor& seed);

  // For op implementations.
  Arena& arena() { return *arena_; }
  Tensor alloc(const Shape& s, DType t = DType::f32) { return arena_->tensor(s, t); }
  Var add_value(const Tensor& t, bool requires_grad);
  void add_node(const Node& n) { nodes_.push_back(n); }
  Node& last_node() { return nodes_.back(); }  // for ops that extend another op's node
  bool needs_grad(std::initializer_list<Var> inputs) const;

  // Gradient recording can be switched off for inference: no nodes are kept.
  bool grad_enabled = true;
  // Dropout is active only when training; each dropout call draws a fresh
  // stream from `seed` and a per-graph counter (reset() keeps the seed).
  bool training = false;
  uint64_t seed = 0;
  uint64_t next_stream() { return seed * 1000003ULL + (stream_++); }

  size_t node_count() const { return nodes_.size(); }

 private:
  struct Slot {
    Tensor value;
    Tensor grad;
    bool requires_grad = false;
    Parameter* param = nullptr;
  };
  Arena* arena_;
  std::vector<Slot> slots_;
  std::vector<Node> nodes_;
  uint64_t stream_ = 0;
  void run_backward();
};

}  // namespace mmkit
