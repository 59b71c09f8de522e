#include "mmkit/ops/contrastive_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "mmkit/ops/gemm.h"
#include "mmkit/ops/l2_normalize.h"

namespace mmkit::ops {

float contrastive_loss_forward(const float* img, const float* txt, float t, int64_t B, int64_t E,
                               const ContrastiveSaved& s) {
  normalize_rows(img, B, E, s.a, s.norms);
  normalize_rows(txt, B, E, s.b, s.norms + B);
  const float scale = std::exp(t);
  std::vector<float> L(size_t(B * B));
  gemm(false, true, B, B, E, scale, s.a, E, s.b, E, 0.f, L.data(), B);
  if (s.logits) std::copy(L.begin(), L.end(), s.logits);

  // Row softmax (image -> texts) and column softmax (text -> images); the
  // gradient of each mean cross-entropy is (softmax - onehot) / B, halved.
  float* G = s.dlogits;
  const float half_inv_b = 0.5f / float(B);
  double loss = 0;
  std::vector<double> col_max(size_t(B), -INFINITY), col_sum(size_t(B), 0.0);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) col_max[size_t(j)] = std::max(col_max[size_t(j)], double(L[size_t(i * B + j)]));
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) col_sum[size_t(j)] += std::exp(double(L[size_t(i * B + j)]) - col_max[size_t(j)]);
  for (int64_t i = 0; i < B; ++i) {
    const float* r = L.data() + i * B;
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < B; ++j) m = std::max(m, double(r[j]));
    for (int64_t j = 0; j < B; ++j) sum += std::exp(double(r[j]) - m);
    const double lse_row = m + std::log(sum);
    loss += lse_row - r[i];  // image i's cross-entropy
    for (int64_t j = 0; j < B; ++j) {
      double p_row = std::exp(double(r[j]) - lse_row);
      double p_col = std::exp(double(r[j]) - col_max[size_t(j)]) / col_sum[size_t(j)];
      G[i * B + j] = float((p_row + p_col - (i == j ? 2.0 : 0.0)) * half_inv_b);
    }
  }
  for (int64_t j = 0; j < B; ++j)  // text j's cross-entropy over images
    loss += col_max[size_t(j)] + std::log(col_sum[size_t(j)]) - L[size_t(j * B + j)];
  double dt = 0;
  for (int64_t k = 0; k < B * B; ++k) dt += double(G[k]) * L[size_t(k)];
  s.norms[2 * B] = float(dt);
  return float(loss * 0.5 / double(B));
}

void contrastive_loss_backward(float dloss, float t, int64_t B, int64_t E, const ContrastiveSaved& s,
                               float* dimg, float* dtxt, float* dt) {
  const float scale = std::exp(t);
  if (dt) *dt += dloss * s.norms[2 * B];
  // dS = exp(t) * dloss * G;  d a = dS @ b,  d b = dS^T @ a
  std::vector<float> dn(size_t(B * E));
  if (dimg) {
    gemm(false, false, B, E, B, scale * dloss, s.dlogits, B, s.b, E, 0.f, dn.data(), E);
    normalize_rows_backward(s.a, s.norms, dn.data(), B, E, dimg);
  }
  if (dtxt) {
    gemm(true, false, B, E, B, scale * dloss, s.dlogits, B, s.a, E, 0.f, dn.data(), E);
    normalize_rows_backward(s.b, s.norms + B, dn.data(), B, E, dtxt);
  }
}

namespace {

// Cross-entropy of each row of X [B, M] against target column r0 + i: adds
// the loss to *loss and writes (softmax - onehot) * w into G [B, M].
void row_cross_entropy(const float* X, int64_t B, int64_t M, int64_t r0, double w, double* loss, float* G) {
  for (int64_t i = 0; i < B; ++i) {
    const float* r = X + i * M;
    double m = -INFINITY, sum = 0;
    for (int64_t k = 0; k < M; ++k) m = std::max(m, double(r[k]));
    for (int64_t k = 0; k < M; ++k) sum += std::exp(double(r[k]) - m);
    const double lse = m + std::log(sum);
    *loss += lse - r[r0 + i];
    for (int64_t k = 0; k < M; ++k) G[i * M + k] = float((std::exp(double(r[k]) - lse) - (k == r0 + i ? 1.0 : 0.0)) * w);
  }
}

}  // namespace

float contrastive_loss_rows_forward(const float* img, const float* txt, float t, int64_t M, int64_t E, int64_t r0,
                                    int64_t B, const ContrastiveRowsSaved& s) {
  normalize_rows(img, M, E, s.a, s.norms);
  normalize_rows(txt, M, E, s.b, s.norms + M);
  const float scale = std::exp(t);
  // Own image rows against every text, and own text rows against every image
  // (the columns of L, stored as rows of L^T).
  std::vector<float> L(size_t(2 * B * M));
  gemm(false, true, B, M, E, scale, s.a + r0 * E, E, s.b, E, 0.f, L.data(), M);
  gemm(false, true, B, M, E, scale, s.b + r0 * E, E, s.a, E, 0.f, L.data() + B * M, M);
  if (s.logits) std::copy(L.begin(), L.begin() + B * M, s.logits);
  double loss = 0;
  const double w = 0.5 / double(B);
  row_cross_entropy(L.data(), B, M, r0, w, &loss, s.g);
  row_cross_entropy(L.data() + B * M, B, M, r0, w, &loss, s.g + B * M);
  double dt = 0;
  for (int64_t k = 0; k < 2 * B * M; ++k) dt += double(s.g[k]) * L[size_t(k)];
  s.norms[2 * M] = float(dt);
  return float(loss * w);
}

void contrastive_loss_rows_backward(float dloss, float t, int64_t M, int64_t E, int64_t r0, int64_t B,
                                    const ContrastiveRowsSaved& s, float* dimg, float* dtxt, float* dt) {
  const float scale = std::exp(t) * dloss;
  if (dt) *dt += dloss * s.norms[2 * M];
  const float* Gr = s.g;          // d/d (a_own . b_all) [B, M]
  const float* Gc = s.g + B * M;  // d/d (b_own . a_all) [B, M]
  std::vector<float> da(size_t(M * E), 0.f), db(size_t(M * E), 0.f);
  // a_own gets Gr @ b_all, a_all gets Gc^T @ b_own; b likewise with a and b swapped.
  gemm(false, false, B, E, M, scale, Gr, M, s.b, E, 1.f, da.data() + r0 * E, E);
  gemm(true, false, M, E, B, scale, Gc, M, s.b + r0 * E, E, 1.f, da.data(), E);
  gemm(false, false, B, E, M, scale, Gc, M, s.a, E, 1.f, db.data() + r0 * E, E);
  gemm(true, false, M, E, B, scale, Gr, M, s.a + r0 * E, E, 1.f, db.data(), E);
  if (dimg) normalize_rows_backward(s.a, s.norms, da.data(), M, E, dimg);
  if (dtxt) normalize_rows_backward(s.b, s.norms + M, db.data(), M, E, dtxt);
}

}  // namespace mmkit::ops
