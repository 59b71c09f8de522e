// bf16 GEMM with f32 accumulation and an f32 output, for mixed-precision
// training (`--precision bf16`):
//   C[M,N] = alpha * op(A) @ op(B) + beta * C,  A and B bf16 (raw uint16_t),
//   C f32, op(X) = X or X^T, row-major as ops::gemm.
// Through oneDNN's matmul primitive (AVX512-BF16 dot products at twice the
// f32 FMA rate on this machine's Zen 5 cores). One primitive per shape, made
// on first use and cached (a training step has a few dozen shapes, reused
// every step). Without oneDNN, or when oneDNN has no bf16 matmul for this CPU,
// the operands are widened to f32 and go through ops::gemm (same rounding of
// the inputs, so the same numbers up to summation order).
#pragma once
#include <cstdint>
#include <string>

namespace mmkit::ops {

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
               int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Plain loop in double over the widened bf16 values; the test oracle.
void gemm_bf16_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C,
                         int64_t ldc);

// f32 -> bf16 for n values, round to nearest even (NaN stays NaN), parallel
// for large n: the per-step conversion of weights and GEMM inputs.
void f32_to_bf16(const float* x, uint16_t* y, int64_t n);
void bf16_to_f32(const uint16_t* x, float* y, int64_t n);

// Which implementation gemm_bf16 runs here: "oneDNN <impl>" (e.g. brg:avx512_core_bf16) or
// "f32 fallback".
std::string gemm_bf16_backend_name();

}  // namespace mmkit::ops
