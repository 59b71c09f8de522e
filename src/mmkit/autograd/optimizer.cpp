#include "mmkit/autograd/optimizer.h"

#include <cmath>

namespace mmkit {

AdamW::AdamW(std::vector<Parameter*> params, const AdamWConfig& cfg)
    : params_(std::move(params)), cfg_(cfg) {
  for (Parameter* p : params_) {
    p->alloc_grad();
    m_.push_back(Tensor::zeros(p->value.shape()));
    v_.push_back(Tensor::zeros(p->value.shape()));
  }
}

void AdamW::zero_grad() {
  for (Parameter* p : params_) p->grad.zero();
}

void AdamW::step(float lr) {
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
    const float* g = p->grad.f32();
    float* m = m_[k].f32();
    float* v = v_[k].f32();
    const float decay = p->decay ? 1.f - lr * cfg_.weight_decay : 1.f;
    const int64_t n = p->value.numel();
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
      float gi = g[i];
      m[i] = b1 * m[i] + (1.f - b1) * gi;
      v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
      float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + cfg_.eps;
      w[i] = w[i] * decay - step_size * m[i] / denom;
    }
  }
}

float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm) {
  double sq = 0;
  for (Parameter* p : params) {
    if (!p->trainable || !p->grad.defined()) continue;
    const float* g = p->grad.f32();
    for (int64_t i = 0, n = p->grad.numel(); i < n; ++i) sq += double(g[i]) * g[i];
  }
  float norm = float(std::sqrt(sq));
  if (max_norm > 0.f && norm > max_norm) {
    float c = max_norm / (norm + 1e-6f);
    for (Parameter* p : params) {
      if (!p->trainable || !p->grad.defined()) continue;
      float* g = p->grad.f32();
      for (int64_t i = 0, n = p->grad.numel(); i < n; ++i) g[i] *= c;
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
