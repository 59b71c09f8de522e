// Row gather along the leading axis: y[m, :] = x[index[m], :] for x [N, R]
// (R = product of the trailing dims), index I32 [M] in [0, N). Backward
// scatter-adds: dx[index[m], :] += dy[m, :]. VQA uses it to encode each image
// once and hand its tokens to every question about it.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void gather_rows_forward(const float* x, const int32_t* index, float* y, int64_t M, int64_t R);
// Serial over m (several m may hit the same row); parallel over R chunks.
void gather_rows_backward(const float* dy, const int32_t* index, float* dx, int64_t M, int64_t R);

}  // namespace mmkit::ops
