#include "mmkit/ops/gather_rows.h"

#include <cstring>

namespace mmkit::ops {

void gather_rows_forward(const float* x, const int32_t* index, float* y, int64_t M, int64_t R) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * R, x + int64_t(index[m]) * R, size_t(R) * sizeof(float));
}

void gather_rows_backward(const float* dy, const int32_t* index, float* dx, int64_t M, int64_t R) {
  // Columns are independent, so threads split the row width and each keeps
  // the fixed m order: results do not depend on the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < R; c0 += 256) {
    const int64_t c1 = c0 + 256 < R ? c0 + 256 : R;
    for (int64_t m = 0; m < M; ++m) {
      const float* src = dy + m * R;
      float* dst = dx + int64_t(index[m]) * R;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace mmkit::ops
