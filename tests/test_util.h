// Shared helpers for numeric tests: fixture loading and tolerant comparison
// that reports the worst element (llm.c style: |a - b| <= abs + rel * |b|).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <sys/stat.h>

#include "mmkit/core/tensor.h"
#include "mmkit/io/checkpoint.h"

namespace mmkit::test {

inline std::string fixture(const std::string& name) {
  return std::string(MMKIT_SOURCE_DIR) + "/tests/fixtures/" + name;
}

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Max |x| over a tensor: the "scale" that relative tolerances refer to.
inline float max_abs(const Tensor& t) {
  float m = 0;
  const float* d = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) m = std::fmax(m, std::fabs(d[i]));
  return m;
}

// Element-wise check |got - want| <= abs_tol + rel_tol * |want|; on failure
// the message names the tensor, the worst index, both values and the excess.
inline ::testing::AssertionResult close(const std::string& what, const Tensor& got,
                                        const Tensor& want, float abs_tol, float rel_tol) {
  if (got.numel() != want.numel())
    return ::testing::AssertionFailure() << what << ": got " << got.shape().str() << ", expected "
                                         << want.shape().str();
  const float* a = got.f32();
  const float* b = want.f32();
  int64_t worst = -1;
  double worst_excess = 0, worst_diff = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double diff = std::fabs(double(a[i]) - b[i]);
    double excess = diff - (abs_tol + rel_tol * std::fabs(b[i]));
    if (!(diff == diff) || excess > worst_excess || (worst < 0 && excess > 0)) {
      if (!(excess <= worst_excess) || worst < 0) {
        worst = i;
        worst_excess = excess;
        worst_diff = diff;
      }
    }
  }
  if (worst >= 0)
    return ::testing::AssertionFailure()
           << what << ": worst element [" << worst << "] got " << a[worst] << ", expected "
           << b[worst] << " (|diff| " << worst_diff << " > abs " << abs_tol << " + rel " << rel_tol
           << " * |expected|)";
  return ::testing::AssertionSuccess();
}

}  // namespace mmkit::test
