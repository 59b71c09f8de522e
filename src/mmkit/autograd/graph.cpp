#include "mmkit/autograd/graph.h"

#include "mmkit/ops/gemm_bf16.h"

namespace mmkit {

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  fail("unknown precision \"", name, "\": expected fp32 or bf16");
}

void Graph::reset() {
  slots_.clear();
  nodes_.clear();
  param_half_.clear();
  bf16_conversions_ = 0;
  stream_ = 0;
  arena_->reset();
}

const uint16_t* Graph::bf16_data(Var v) {
  MMKIT_ASSERT(v.valid() && size_t(v.id) < slots_.size());
  Slot& s = slots_[v.id];
  if (s.half.defined()) return s.half.ptr<uint16_t>();
  if (s.source) {
    auto it = param_half_.find(s.source);
    if (it != param_half_.end()) {
      s.half = it->second;
      return s.half.ptr<uint16_t>();
    }
  }
  MMKIT_ASSERT(s.value.dtype() == DType::f32);
  s.half = arena_->tensor(s.value.shape(), DType::bf16);
  ops::f32_to_bf16(s.value.f32(), s.half.ptr<uint16_t>(), s.value.numel());
  ++bf16_conversions_;
  if (s.source) param_half_.emplace(s.source, s.half);
  return s.half.ptr<uint16_t>();
}

Var Graph::add_value(const Tensor& t, bool requires_grad) {
  Slot s;
  s.value = t;
  s.requires_grad = requires_grad && grad_enabled;
  slots_.push_back(std::move(s));
  return Var{int(slots_.size()) - 1};
}

Var Graph::constant(const Tensor& t) { return add_value(t, false); }

Var Graph::leaf(const Tensor& t) { return add_value(t, true); }

Var Graph::param(Parameter& p) {
  Var v = add_value(p.value, p.trainable);
  slots_[v.id].source = &p;
  if (slots_[v.id].requires_grad) {
    p.alloc_grad();
    slots_[v.id].grad = p.grad;
    slots_[v.id].param = &p;
  }
  return v;
}

bool Graph::needs_grad(VarList inputs) const {
  if (!grad_enabled) return false;
  for (Var v : inputs)
    if (v.valid() && slots_[v.id].requires_grad) return true;
  return false;
}

Node& Graph::add_node(Var out, BackwardFn backward, VarList inputs, std::initializer_list<Tensor> saved) {
  // Callers check user-facing limits (concat's input count) before their forward.
  MMKIT_ASSERT(backward != nullptr);
  MMKIT_ASSERT(inputs.size <= size_t(Node::kMaxInputs) && saved.size() <= size_t(Node::kMaxSaved));
  Node& n = nodes_.emplace_back();
  n.backward = backward;
  n.out = out.id;
  n.num_in_ = int(inputs.size);
  for (size_t k = 0; k < inputs.size; ++k) {
    // The tape is in forward order: an input is recorded before the op that reads it.
    MMKIT_ASSERT(inputs.data[k].id < out.id);
    n.in_[k] = inputs.data[k].valid() ? inputs.data[k].id : -1;
  }
  int k = 0;
  for (const Tensor& t : saved) n.saved[k++] = t;
  return n;
}

float* Graph::grad_ptr(int id) {
  if (id < 0) return nullptr;
  MMKIT_ASSERT(size_t(id) < slots_.size());
  Slot& s = slots_[id];
  if (!s.requires_grad) return nullptr;
  if (!s.grad.defined()) s.grad = arena_->zeros(s.value.shape());
  return s.grad.f32();
}

bool Graph::alias_grad(int in, int out) {
  if (in < 0 || out < 0) return false;
  MMKIT_ASSERT(size_t(in) < slots_.size() && size_t(out) < slots_.size());
  Slot& si = slots_[in];
  Slot& so = slots_[out];
  MMKIT_ASSERT(si.value.numel() == so.value.numel());
  if (!si.requires_grad || si.grad.defined() || si.param || !so.grad.defined()) return false;
  si.grad = so.grad.reshape(si.value.shape());  // shared: out's gradient stays readable
  return true;
}

Tensor Graph::grad(Var v) {
  grad_ptr(v.id);
  return slots_[v.id].grad;
}

void Graph::backward(Var loss) {
  MMKIT_CHECK(loss.valid() && value(loss).numel() == 1, "backward() needs a scalar loss, got shape ",
              value(loss).shape().str());
  MMKIT_CHECK(requires_grad(loss), "backward(): the loss does not depend on anything that needs a gradient");
  grad_ptr(loss.id)[0] += 1.f;
  run_backward();
}

void Graph::backward(Var out, const Tensor& seed) {
  MMKIT_CHECK(seed.shape() == value(out).shape(), "backward: seed ", seed.shape().str(),
              " does not match output ", value(out).shape().str());
  MMKIT_CHECK(requires_grad(out), "backward(): the output does not need a gradient");
  float* g = grad_ptr(out.id);
  const float* s = seed.f32();
  for (int64_t i = 0, n = seed.numel(); i < n; ++i) g[i] += s[i];
  run_backward();
}

void Graph::run_backward() {
  for (size_t n = nodes_.size(); n-- > 0;) {
    const Node& node = nodes_[n];
    MMKIT_ASSERT(node.out >= 0 && size_t(node.out) < slots_.size());
    // No gradient reached this node's output: nothing to propagate.
    if (!slots_[node.out].grad.defined()) continue;
    node.backward(*this, node);
  }
}

}  // namespace mmkit
