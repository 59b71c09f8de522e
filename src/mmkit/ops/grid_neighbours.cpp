#include "mmkit/ops/grid_neighbours.h"

#include <cstring>

namespace mmkit::ops {

namespace {

// Calls f(p, slot, q) for every cell p, neighbour slot in [0, k*k) and source cell q (-1 outside).
template <class F>
void for_each_neighbour(int64_t G, int64_t k, F&& f) {
  const int64_t h = k / 2;
  for (int64_t r = 0; r < G; ++r)
    for (int64_t c = 0; c < G; ++c)
      for (int64_t dy = 0; dy < k; ++dy)
        for (int64_t dx = 0; dx < k; ++dx) {
          const int64_t rr = r + dy - h, cc = c + dx - h;
          const bool in = rr >= 0 && rr < G && cc >= 0 && cc < G;
          f(r * G + c, dy * k + dx, in ? rr * G + cc : -1);
        }
}

}  // namespace

void grid_neighbours_forward(const float* x, float* y, int64_t B, int64_t G, int64_t C, int64_t k) {
  const int64_t P = G * G, W = k * k * C;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const float* xb = x + b * P * C;
    float* yb = y + b * P * W;
    for_each_neighbour(G, k, [&](int64_t p, int64_t slot, int64_t q) {
      float* dst = yb + p * W + slot * C;
      if (q < 0)
        std::memset(dst, 0, size_t(C) * sizeof(float));
      else
        std::memcpy(dst, xb + q * C, size_t(C) * sizeof(float));
    });
  }
}

void grid_neighbours_backward(const float* dy, float* dx, int64_t B, int64_t G, int64_t C, int64_t k) {
  const int64_t P = G * G, W = k * k * C;
#pragma omp parallel for schedule(static)  // rows of one b only: no two threads add to one dx row
  for (int64_t b = 0; b < B; ++b) {
    const float* gb = dy + b * P * W;
    float* db = dx + b * P * C;
    for_each_neighbour(G, k, [&](int64_t p, int64_t slot, int64_t q) {
      if (q < 0) return;
      const float* src = gb + p * W + slot * C;
      float* dst = db + q * C;
      for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
    });
  }
}

}  // namespace mmkit::ops
