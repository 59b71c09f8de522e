#include "mmkit/ops/shape_ops.h"

#include <cstring>

namespace mmkit::ops {

void concat_forward(const float* const* xs, const int64_t* sizes, int n, float* y,
                    int64_t outer) {
  int64_t total = 0;
  for (int k = 0; k < n; ++k) total += sizes[k];
  for (int64_t o = 0; o < outer; ++o) {
    float* dst = y + o * total;
    for (int k = 0; k < n; ++k) {
      std::memcpy(dst, xs[k] + o * sizes[k], sizes[k] * sizeof(float));
      dst += sizes[k];
    }
  }
}

void concat_backward(const float* dy, float* const* dxs, const int64_t* sizes, int n,
                     int64_t outer) {
  int64_t total = 0;
  for (int k = 0; k < n; ++k) total += sizes[k];
  for (int64_t o = 0; o < outer; ++o) {
    const float* src = dy + o * total;
    for (int k = 0; k < n; ++k) {
      if (dxs[k]) {
        float* d = dxs[k] + o * sizes[k];
        for (int64_t j = 0; j < sizes[k]; ++j) d[j] += src[j];
      }
      src += sizes[k];
    }
  }
}

// View x as [pre, A, mid, Bdim, post] where A = s[a], Bdim = s[b] (a < b).
static void split(const Shape& s, int a, int b, int64_t* pre, int64_t* A, int64_t* mid,
                  int64_t* Bd, int64_t* post) {
  *pre = *mid = *post = 1;
  for (int i = 0; i < a; ++i) *pre *= s.d[i];
  for (int i = a + 1; i < b; ++i) *mid *= s.d[i];
  for (int i = b + 1; i < s.n; ++i) *post *= s.d[i];
  *A = s.d[a];
  *Bd = s.d[b];
}

template <bool kAccumulate, bool kForward>
static void transpose_impl(const float* src, float* dst, const Shape& s, int a, int b) {
  if (a > b) std::swap(a, b);
  int64_t pre, A, mid, Bd, post;
  split(s, a, b, &pre, &A, &mid, &Bd, &post);
  // x index  (p, i, m, j, q) -> y index (p, j, m, i, q)
#pragma omp parallel for collapse(2) if (s.numel() > (1 << 15))
  for (int64_t p = 0; p < pre; ++p)
    for (int64_t i = 0; i < A; ++i)
      for (int64_t m = 0; m < mid; ++m)
        for (int64_t j = 0; j < Bd; ++j) {
          int64_t xi = (((p * A + i) * mid + m) * Bd + j) * post;
          int64_t yi = (((p * Bd + j) * mid + m) * A + i) * post;
          const float* from = kForward ? src + xi : src + yi;
          float* to = kForward ? dst + yi : dst + xi;
          for (int64_t q = 0; q < post; ++q) {
            if (kAccumulate)
              to[q] += from[q];
            else
              to[q] = from[q];
          }
        }
}

void transpose_forward(const float* x, float* y, const Shape& s, int a, int b) {
  transpose_impl<false, true>(x, y, s, a, b);
}

void transpose_backward(const float* dy, float* dx, const Shape& s, int a, int b) {
  transpose_impl<true, false>(dy, dx, s, a, b);
}

}  // namespace mmkit::ops
