#include "mmkit/ops/sigmoid_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "mmkit/ops/gemm.h"
#include "mmkit/ops/l2_normalize.h"

namespace mmkit::ops {

namespace {

// log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// 1 / (1 + e^-x), with exp of a non-positive argument only.
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

}  // namespace

float sigmoid_loss_forward(const float* img, const float* txt, float t, float bias, int64_t B, int64_t M, int64_t E,
                           int64_t r0, const SigmoidLossSaved& s) {
  normalize_rows(img, B, E, s.a, s.norms);
  normalize_rows(txt, M, E, s.b, s.norms + B);
  // S = exp(t) a b^T without the bias: d L / d t = S exactly (L - bias would
  // cancel digits when |bias| >> |S|, as at SigLIP's initial bias of -10).
  std::vector<float> S(size_t(B * M));
  gemm(false, true, B, M, E, std::exp(t), s.a, E, s.b, E, 0.f, S.data(), M);
  // -log sigmoid(z L) = softplus(-z L); its derivative in L is -z sigmoid(-z L).
  const double inv_b = 1.0 / double(B);
  double loss = 0, dt = 0, dbias = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < M; ++j) {
      const size_t k = size_t(i * M + j);
      const double L = double(S[k]) + bias, z = j == r0 + i ? 1.0 : -1.0;
      loss += softplus(-z * L);
      const double g = -z * sigmoid(-z * L) * inv_b;
      s.dlogits[k] = float(g);
      dt += g * S[k];
      dbias += g;
      if (s.logits) s.logits[k] = float(L);
    }
  s.norms[B + M] = float(dt);
  s.norms[B + M + 1] = float(dbias);
  return float(loss * inv_b);
}

void sigmoid_loss_backward(float dloss, float t, int64_t B, int64_t M, int64_t E, const SigmoidLossSaved& s,
                           float* dimg, float* dtxt, float* dt, float* dbias) {
  if (dt) *dt += dloss * s.norms[B + M];
  if (dbias) *dbias += dloss * s.norms[B + M + 1];
  // d (a_i . b_j) = exp(t) dloss G_ij:  d a = (.) G @ b [B, E],  d b = (.) G^T @ a [M, E].
  const float scale = std::exp(t) * dloss;
  if (dimg) {
    std::vector<float> da(size_t(B * E));
    gemm(false, false, B, E, M, scale, s.dlogits, M, s.b, E, 0.f, da.data(), E);
    normalize_rows_backward(s.a, s.norms, da.data(), B, E, dimg);
  }
  if (dtxt) {
    std::vector<float> db(size_t(M * E));
    gemm(true, false, M, E, B, scale, s.dlogits, M, s.a, E, 0.f, db.data(), E);
    normalize_rows_backward(s.b, s.norms + B, db.data(), M, E, dtxt);
  }
}

}  // namespace mmkit::ops
