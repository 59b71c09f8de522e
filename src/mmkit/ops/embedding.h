// Embedding lookup: y[n, D] = table[ids[n], D]; backward scatter-adds rows.
#pragma once
#include <cstdint>

namespace mmkit::ops {

// Ids outside [0, V) throw mmkit::Error naming the id and position.
void embedding_forward(const float* table, const int32_t* ids, float* y, int64_t n, int64_t V,
                       int64_t D);
void embedding_backward(const float* dy, const int32_t* ids, float* dtable, int64_t n, int64_t D);

}  // namespace mmkit::ops
