#include "mmkit/autograd/optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace mmkit {

AdamW::AdamW(std::vector<Parameter*> params, const AdamWConfig& cfg)
    : params_(std::move(params)), cfg_(cfg) {
  for (Parameter* p : params_) {
    p->alloc_grad();
    p->grad.zero();  // a step with zero_grads relies on starting from zero
    m_.push_back(Tensor::zeros(p->value.shape()));
    v_.push_back(Tensor::zeros(p->value.shape()));
  }
}

void AdamW::zero_grad() {
  for (Parameter* p : params_) p->grad.zero();
}

void AdamW::step(float lr, float grad_scale, bool zero_grads) {
  ++t_;
  const float b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(double(b1), double(t_));
  const double bc2 = 1.0 - std::pow(double(b2), double(t_));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  for (size_t k = 0; k < params_.size(); ++k) {
    Parameter* p = params_[k];
    if (!p->trainable) continue;
    float* w = p->value.f32();
    float* g = p->grad.f32();
    float* m = m_[k].f32();
    float* v = v_[k].f32();
    const float decay = p->decay ? 1.f - lr * cfg_.weight_decay : 1.f;
    const int64_t n = p->value.numel();
    const float eps = cfg_.eps;
    // zero_grads is loop-invariant: one loop serves the fused and the plain step.
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * grad_scale;
      if (zero_grads) g[i] = 0.f;
      m[i] = b1 * m[i] + (1.f - b1) * gi;
      v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
      const float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + eps;
      w[i] = w[i] * decay - step_size * m[i] / denom;
    }
  }
}

float grad_norm(const std::vector<Parameter*>& params) {
  constexpr int64_t kChunk = 1 << 16;
  // (parameter, first element) of every chunk, in parameter order.
  std::vector<std::pair<const float*, int64_t>> chunks;
  for (Parameter* p : params) {
    if (!p->trainable || !p->grad.defined()) continue;
    const int64_t n = p->grad.numel();
    for (int64_t s = 0; s < n; s += kChunk) chunks.emplace_back(p->grad.f32() + s, std::min(kChunk, n - s));
  }
  std::vector<double> part(chunks.size(), 0.0);
  const int64_t nc = int64_t(chunks.size());
#pragma omp parallel for schedule(static) if (nc > 1)
  for (int64_t c = 0; c < nc; ++c) {
    const float* g = chunks[size_t(c)].first;
    const int64_t n = chunks[size_t(c)].second;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += double(g[i]) * double(g[i]);
    part[size_t(c)] = s;
  }
  double sq = 0;
  for (double s : part) sq += s;
  return float(std::sqrt(sq));
}

float clip_scale(float norm, float max_norm) {
  return max_norm > 0.f && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.f;
}

float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm) {
  const float norm = grad_norm(params);
  const float c = clip_scale(norm, max_norm);
  if (c != 1.f) {
    for (Parameter* p : params) {
      if (!p->trainable || !p->grad.defined()) continue;
      float* g = p->grad.f32();
      const int64_t n = p->grad.numel();
#pragma omp parallel for simd if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) g[i] *= c;
    }
  }
  return norm;
}

float warmup_cosine_lr(int64_t step, int64_t warmup, int64_t total, float base_lr, float min_lr) {
  if (warmup > 0 && step < warmup) return base_lr * float(step + 1) / float(warmup);
  if (total <= warmup) return base_lr;
  double progress = double(step - warmup) / double(total - warmup);
  if (progress > 1.0) progress = 1.0;
  return min_lr + float(0.5 * (1.0 + std::cos(M_PI * progress))) * (base_lr - min_lr);
}

}  // namespace mmkit
