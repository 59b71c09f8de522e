#include "mmkit/eval/retrieval.h"

#include <cmath>

#include "mmkit/core/error.h"
#include "mmkit/ops/gemm.h"

namespace mmkit {

namespace {

// Rank (0-based) of the best-scoring matching column in row r of S [R, C]:
// the number of non-matching columns scoring >= that best match.
template <class Match>
int64_t best_match_rank(const float* row, int64_t C, Match match) {
  float best = -INFINITY;
  bool any = false;
  for (int64_t c = 0; c < C; ++c)
    if (match(c) && (!any || row[c] > best)) {
      best = row[c];
      any = true;
    }
  if (!any) return C;  // nothing to find: never a hit
  int64_t rank = 0;
  for (int64_t c = 0; c < C; ++c)
    if (!match(c) && row[c] >= best) ++rank;
  return rank;
}

}  // namespace

RetrievalResult retrieval_recall(const Tensor& img, const Tensor& txt, const std::vector<int64_t>& image_group,
                                 const std::vector<int64_t>& text_group, std::vector<int> ks) {
  MMKIT_CHECK(img.shape().n == 2 && txt.shape().n == 2 && img.shape()[1] == txt.shape()[1],
              "retrieval: embeddings must be [Ni, E] and [Nt, E], got ", img.shape().str(), " and ",
              txt.shape().str());
  const int64_t Ni = img.shape()[0], Nt = txt.shape()[0], E = img.shape()[1];
  MMKIT_CHECK(int64_t(image_group.size()) == Ni && int64_t(text_group.size()) == Nt,
              "retrieval: one group id per image and per text needed");
  MMKIT_CHECK(Ni > 0 && Nt > 0, "retrieval: no images or no texts");
  std::vector<float> S(size_t(Ni * Nt));
  ops::gemm(false, true, Ni, Nt, E, 1.f, img.f32(), E, txt.f32(), E, 0.f, S.data(), Nt);
  RetrievalResult r;
  r.ks = ks;
  r.images = Ni;
  r.texts = Nt;
  r.image_to_text.assign(ks.size(), 0);
  r.text_to_image.assign(ks.size(), 0);
  for (int64_t i = 0; i < Ni; ++i) {
    int64_t rank = best_match_rank(S.data() + i * Nt, Nt, [&](int64_t j) { return text_group[size_t(j)] == image_group[size_t(i)]; });
    for (size_t k = 0; k < ks.size(); ++k) r.image_to_text[k] += rank < ks[k];
  }
  std::vector<float> col(static_cast<size_t>(Ni));
  for (int64_t j = 0; j < Nt; ++j) {
    for (int64_t i = 0; i < Ni; ++i) col[size_t(i)] = S[size_t(i * Nt + j)];
    int64_t rank = best_match_rank(col.data(), Ni, [&](int64_t i) { return image_group[size_t(i)] == text_group[size_t(j)]; });
    for (size_t k = 0; k < ks.size(); ++k) r.text_to_image[k] += rank < ks[k];
  }
  for (size_t k = 0; k < ks.size(); ++k) {
    r.image_to_text[k] /= double(Ni);
    r.text_to_image[k] /= double(Nt);
  }
  return r;
}

}  // namespace mmkit
