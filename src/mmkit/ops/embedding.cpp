#include "mmkit/ops/embedding.h"

#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit::ops {

void embedding_forward(const float* table, const int32_t* ids, float* y, int64_t n, int64_t V,
                       int64_t D) {
  for (int64_t i = 0; i < n; ++i)
    MMKIT_CHECK(ids[i] >= 0 && ids[i] < V, "embedding: id ", ids[i], " at position ", i,
                " outside vocabulary of ", V);
#pragma omp parallel for if (n * D > (1 << 15))
  for (int64_t i = 0; i < n; ++i) std::memcpy(y + i * D, table + int64_t(ids[i]) * D, D * 4);
}

void embedding_backward(const float* dy, const int32_t* ids, float* dtable, int64_t n,
                        int64_t D) {
  // Serial: repeated ids would race, and the order stays deterministic.
  for (int64_t i = 0; i < n; ++i) {
    float* row = dtable + int64_t(ids[i]) * D;
    for (int64_t j = 0; j < D; ++j) row[j] += dy[i * D + j];
  }
}

}  // namespace mmkit::ops
