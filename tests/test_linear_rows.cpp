// ops::linear_forward against the reference GEMM for every row count that
// picks a different path: few rows go through the transposed product
// (W x^T, then a transpose; see ops/linear.cpp), which depends on the thread
// count, so both 1 and 2 threads are checked.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/ops/linear.h"
#include "test_util.h"

using namespace mmkit;

namespace {

Tensor random_tensor(const Shape& s, Rng& rng) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = rng.normal();
  return t;
}

void check_rows(int64_t N, int64_t in, int64_t out, bool bias) {
  Rng rng(uint64_t(N * 1000 + in * 10 + out));
  Tensor x = random_tensor(Shape{N, in}, rng), W = random_tensor(Shape{out, in}, rng),
         b = random_tensor(Shape{out}, rng);
  Tensor want = Tensor::empty(Shape{N, out});
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < out; ++j) want.f32()[i * out + j] = bias ? b.f32()[j] : 0.f;
  ops::gemm_reference(false, true, N, out, in, 1.f, x.f32(), in, W.f32(), in, 1.f, want.f32(), out);
  Tensor got = Tensor::empty(Shape{N, out});
  got.fill(std::numeric_limits<float>::quiet_NaN());  // every element must be written
  ops::linear_forward(x.f32(), W.f32(), bias ? b.f32() : nullptr, got.f32(), N, in, out);
  const std::string what = "linear N=" + std::to_string(N) + " in=" + std::to_string(in) +
                           " out=" + std::to_string(out) + (bias ? " +bias" : "") +
                           " threads=" + std::to_string(num_threads());
  EXPECT_TRUE(test::close(what, got, want, 1e-4f * std::sqrt(float(in)), 1e-4f));
}

void check_all_row_counts() {
  for (int64_t N : {1, 11, 12, 16, 47, 48, 49, 50, 77, 160, 161, 300})
    for (bool bias : {false, true}) {
      check_rows(N, 37, 45, bias);   // odd sizes: transpose edge blocks
      check_rows(N, 768, 64, bias);  // long reductions
    }
}

}  // namespace

TEST(LinearRows, MatchesReferenceOneThread) {
  set_num_threads(1);
  check_all_row_counts();
}

TEST(LinearRows, MatchesReferenceTwoThreads) {
  set_num_threads(2);
  check_all_row_counts();
}
