#include "mmkit/ops/relation_pairs.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace mmkit::ops {

void relation_pairs_forward(const float* a, const float* c, const float* q, float* y, int64_t B, int64_t P,
                            int64_t H) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) {
      // a_i + q once per row i; the inner loop over j is then one add and a max per element.
      std::vector<float> row(static_cast<std::size_t>(H));
      float* base = row.data();
      const float* ar = a + (b * P + i) * H;
      const float* qr = q ? q + b * H : nullptr;
      for (int64_t h = 0; h < H; ++h) base[h] = ar[h] + (qr ? qr[h] : 0.f);
      float* yr = y + ((b * P + i) * P) * H;
      for (int64_t j = 0; j < P; ++j) {
        const float* cr = c + (b * P + j) * H;
        float* yo = yr + j * H;
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) {
          const float v = base[h] + cr[h];
          yo[h] = v > 0.f ? v : 0.f;
        }
      }
    }
}

void relation_pairs_backward(const float* dy, const float* y, float* da, float* dc, float* dq, int64_t B, int64_t P,
                             int64_t H) {
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
        float* gp = gi.data();
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) {
          const float gv = yr[h] > 0.f ? dyr[h] : 0.f;
          gp[h] += gv;
          if (dcr) dcr[h] += gv;
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

}  // namespace mmkit::ops
