#include "mmkit/ops/relation_pairs.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace mmkit::ops {

void relation_pairs_forward(const float* a, const float* c, const float* q, const float* e, float* y, int64_t B,
                            int64_t P, int64_t H) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      const float* ar = a + (b * P + i) * H;
      const float* qr = q ? q + b * H : nullptr;
      for (int64_t j = 0; j < P; ++j) {
        const float* cr = c + (b * P + j) * H;
        const float* er = e ? e + ((b * P + i) * P + j) * H : nullptr;
        float* yo = y + ((b * P + i) * P + j) * H;
        // q and e are loop-invariant here; the compiler unswitches the two conditions.
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) {
          const float v = (ar[h] + (qr ? qr[h] : 0.f)) + cr[h] + (er ? er[h] : 0.f);  // the order of the earlier kernel
          yo[h] = v > 0.f ? v : 0.f;
        }
      }
    }
}

void relation_pairs_backward(const float* dy, const float* y, float* da, float* dc, float* dq, float* de, int64_t B,
                             int64_t P, int64_t H) {
  // One batch row per thread: its da rows, dc rows and dq row are written by that thread only.
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    std::vector<float> gi(static_cast<std::size_t>(H)), gq(static_cast<std::size_t>(H), 0.f);
    for (int64_t i = 0; i < P; ++i) {
      std::fill(gi.begin(), gi.end(), 0.f);
      for (int64_t j = 0; j < P; ++j) {
        const int64_t off = ((b * P + i) * P + j) * H;
        const float* dyr = dy + off;
        const float* yr = y + off;
        float* dcr = dc ? dc + (b * P + j) * H : nullptr;
        float* der = de ? de + off : nullptr;
        float* gp = gi.data();
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) {
          const float gv = yr[h] > 0.f ? dyr[h] : 0.f;
          gp[h] += gv;
          if (dcr) dcr[h] += gv;
          if (der) der[h] += gv;
        }
      }
      if (da) {
        float* dar = da + (b * P + i) * H;
        for (int64_t h = 0; h < H; ++h) dar[h] += gi[static_cast<std::size_t>(h)];
      }
      for (int64_t h = 0; h < H; ++h) gq[static_cast<std::size_t>(h)] += gi[static_cast<std::size_t>(h)];
    }
    if (dq)
      for (int64_t h = 0; h < H; ++h) dq[b * H + h] += gq[static_cast<std::size_t>(h)];
  }
}

void pair_sqdiff_forward(const float* p, float* d, int64_t B, int64_t P, int64_t K) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      const float* pi = p + (b * P + i) * K;
      for (int64_t j = 0; j < P; ++j) {
        const float* pj = p + (b * P + j) * K;
        float* dr = d + ((b * P + i) * P + j) * K;
        for (int64_t k = 0; k < K; ++k) {
          const float t = pi[k] - pj[k];
          dr[k] = t * t;
        }
      }
    }
}

void pair_sqdiff_backward(const float* dd, const float* p, float* dp, int64_t B, int64_t P, int64_t K) {
  // d(i,j) depends on p_i and p_j: dp_i += 2 (p_i - p_j) dd(i,j) over j (token i first) plus
  // 2 (p_i - p_j') dd(j',i) over j' (token i second). One batch row per thread.
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      const float* pi = p + (b * P + i) * K;
      float* dpi = dp + (b * P + i) * K;
      for (int64_t j = 0; j < P; ++j) {
        const float* pj = p + (b * P + j) * K;
        const float* d1 = dd + ((b * P + i) * P + j) * K;  // pair (i, j)
        const float* d2 = dd + ((b * P + j) * P + i) * K;  // pair (j, i)
        for (int64_t k = 0; k < K; ++k) dpi[k] += 2.f * (pi[k] - pj[k]) * (d1[k] + d2[k]);
      }
    }
}

}  // namespace mmkit::ops
