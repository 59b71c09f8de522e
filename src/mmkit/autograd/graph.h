// Reverse-mode autograd tape.
//
// A Graph records, for one forward pass, every op whose inputs need
// gradients: a Node holds the op's backward function (a free function in
// autograd/functions.cpp that calls the op's backward kernel in ops/), its
// input/output value ids, what the forward saved and the op's parameters.
// backward() walks the nodes in reverse. Values and gradients live in the
// Graph's Arena, so after the first step a training step allocates nothing:
// reset() rewinds the arena and clears the tape (vectors keep their capacity,
// and a Node holds everything inline).
//
// An op records itself with one call, after its forward:
//
//   struct ScaleParams { float s; };
//   static void scale_bw(Graph& g, const Node& n) {  // dx += s * dy
//     if (float* dx = g.grad_ptr(n.in(0)))
//       ops::axpy(n.params<ScaleParams>().s, g.grad_ptr(n.out), dx, g.value(Var{n.out}).numel());
//   }
//   Var scale(Graph& g, Var x, float s) {
//     Tensor y = ...;  // forward
//     return g.record(y, scale_bw, {x}, ScaleParams{s});
//   }
//
// Each op declares its parameter struct next to its forward and backward; the
// node keeps it inline (Node::kParamsBytes) and params<P>() checks the type.
//
// Gradients accumulate (+=) into zero-initialised buffers; a parameter's
// gradient buffer is its Parameter::grad, so gradients of a whole step
// (or of several micro-batches) add up there until the optimizer zeroes them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "mmkit/autograd/parameter.h"
#include "mmkit/core/arena.h"
#include "mmkit/core/error.h"
#include "mmkit/core/tensor.h"

namespace mmkit {

struct Var {
  int id = -1;
  bool valid() const { return id >= 0; }
};

class Graph;
struct Node;

// What the matmul family (linear, matmul, bmm, patch embedding) computes in.
// bf16 is mixed precision as PyTorch's CPU autocast does it for these ops:
// operands rounded to bf16, products accumulated and stored in f32. Every
// other op, every activation, the losses and all gradients stay f32; the
// parameters stay f32 (master weights) and are rounded to bf16 once per step.
enum class Precision { fp32, bf16 };
const char* precision_name(Precision p);
// "fp32" or "bf16"; throws naming the accepted values otherwise.
Precision parse_precision(const std::string& name);
using BackwardFn = void (*)(Graph&, const Node&);

// An op without parameters.
struct NoParams {};

// The inputs of an op: a braced list of Vars or a vector (concat), viewed for the
// duration of one call (a parameter type only). Invalid Vars (an absent bias)
// keep their position; they never need a gradient.
struct VarList {
  VarList(std::initializer_list<Var> l) : data(std::data(l)), size(l.size()) {}
  VarList(const std::vector<Var>& v) : data(v.data()), size(v.size()) {}
  const Var* begin() const { return data; }
  const Var* end() const { return data + size; }
  const Var* data;
  size_t size;
};

struct Node {
  static constexpr int kMaxInputs = 7;   // concat's limit
  static constexpr int kMaxSaved = 3;
  static constexpr size_t kParamsBytes = 96;  // the largest: AttentionParams

  BackwardFn backward = nullptr;
  int out = -1;  // output value id
  Tensor saved[kMaxSaved];  // op-specific (softmax output, layernorm stats, masks ...)

  int num_inputs() const { return num_in_; }
  // Value id of input k in the order the op passed them; -1 for an absent optional input.
  int in(int k) const {
    MMKIT_ASSERT(k >= 0 && k < num_in_);
    return in_[k];
  }

  // The parameters the op recorded; P must be the type it recorded.
  template <class P>
  const P& params() const {
    check_params_type<P>();
    MMKIT_ASSERT(params_type_ == type_tag<P>());
    return *std::launder(reinterpret_cast<const P*>(params_));
  }
  template <class P>
  void set_params(const P& p) {
    check_params_type<P>();
    new (params_) P(p);
    params_type_ = type_tag<P>();
  }

 private:
  friend class Graph;
  int num_in_ = 0;
  int in_[kMaxInputs] = {-1, -1, -1, -1, -1, -1, -1};
  // One address per parameter type (an inline variable): which type params_ holds.
  template <class P>
  struct Tag {
    static constexpr char id = 0;
  };
  template <class P>
  static const void* type_tag() { return &Tag<P>::id; }
  template <class P>
  static constexpr void check_params_type() {
    static_assert(std::is_trivially_copyable_v<P> && std::is_trivially_destructible_v<P>,
                  "op parameters are copied as bytes with the node: plain values only");
    static_assert(sizeof(P) <= kParamsBytes, "op parameters exceed Node::kParamsBytes");
    static_assert(alignof(P) <= alignof(std::max_align_t), "op parameters over-aligned");
  }
  const void* params_type_ = nullptr;
  alignas(std::max_align_t) unsigned char params_[kParamsBytes];
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
  // True when recording is on and any valid input needs a gradient (ops that
  // save extra tensors for the backward ask before their forward).
  bool needs_grad(VarList inputs) const;
  // Records an op's output y and, when any input needs a gradient, its node:
  // `backward`, the inputs (at most Node::kMaxInputs), the tensors the backward
  // reads (at most Node::kMaxSaved) and the op's parameters. Returns y's Var.
  Var record(const Tensor& y, BackwardFn backward, VarList inputs) {
    return record(y, backward, inputs, NoParams{});
  }
  template <class P>
  Var record(const Tensor& y, BackwardFn backward, VarList inputs, const P& params,
             std::initializer_list<Tensor> saved = {}) {
    const bool rg = needs_grad(inputs);
    const Var r = add_value(y, rg);
    if (rg) add_node(r, backward, inputs, saved).set_params(params);
    return r;
  }

  // Gradient recording can be switched off for inference: no nodes are kept.
  bool grad_enabled = true;
  // Dropout is active only when training; each dropout call draws a fresh
  // stream from `seed` and a per-graph counter (reset() keeps the seed).
  bool training = false;
  uint64_t seed = 0;
  uint64_t next_stream() { return seed * 1000003ULL + (stream_++); }
  // Data-parallel training: this graph computes rows [batch_row0, batch_row0 +
  // batch_rows) of a global batch (0 rows: the whole batch), so dropout draws
  // the masks of those rows.
  int64_t batch_row0 = 0, batch_rows = 0;

  size_t node_count() const { return nodes_.size(); }

  // Mixed precision: set before the forward (train::run_training sets it from --precision).
  Precision precision = Precision::fp32;
  bool bf16() const { return precision == Precision::bf16; }
  // v's value rounded to bf16 (raw uint16_t, same shape), made on first request and kept until
  // reset(): a GEMM input converted in the forward is reused by the backward, and a parameter
  // read by several ops (or through several Vars) is converted once per step.
  const uint16_t* bf16_data(Var v);
  // Values converted so far this step (tests check that weights convert once).
  int64_t bf16_conversions() const { return bf16_conversions_; }

 private:
  struct Slot {
    Tensor value;
    Tensor grad;
    bool requires_grad = false;
    Parameter* param = nullptr;
    const Parameter* source = nullptr;  // the parameter this value is (trainable or not)
    Tensor half;                        // bf16 copy of value (bf16_data)
  };
  Arena* arena_;
  std::vector<Slot> slots_;
  std::vector<Node> nodes_;
  uint64_t stream_ = 0;
  std::unordered_map<const Parameter*, Tensor> param_half_;  // this step's bf16 parameter copies
  int64_t bf16_conversions_ = 0;
  Node& add_node(Var out, BackwardFn backward, VarList inputs, std::initializer_list<Tensor> saved);
  void run_backward();
};

}  // namespace mmkit
