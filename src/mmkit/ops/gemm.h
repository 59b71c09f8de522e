// Row-major single-precision GEMM over the chosen BLAS backend:
//   C[M,N] = alpha * op(A) @ op(B) + beta * C,  op(X) = X or X^T.
// Everything with a matmul in it (linear, attention, patch embedding) goes
// through here so the backend choice lives in one place (see
// docs/BENCHMARKS.md for the oneDNN vs OpenBLAS measurement).
#pragma once
#include <cstdint>

namespace mmkit::ops {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Plain triple loop; the test oracle for gemm().
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

const char* gemm_backend_name();

}  // namespace mmkit::ops
