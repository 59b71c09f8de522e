#include "mmkit/ops/gemm.h"

#include "mmkit/core/error.h"

#if defined(MMKIT_USE_DNNL)
#include <dnnl.h>
#elif defined(MMKIT_USE_OPENBLAS)
#include <cblas.h>
#endif

namespace mmkit::ops {

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
#if defined(MMKIT_USE_DNNL)
  dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                                beta, C, ldc);
  MMKIT_CHECK(st == dnnl_success, "dnnl_sgemm failed with status ", int(st), " for M=", M,
              " N=", N, " K=", K);
#elif defined(MMKIT_USE_OPENBLAS)
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
#else
  gemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = ta ? A[k * lda + i] : A[i * lda + k];
        float b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += double(a) * b;
      }
      float c = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = c + alpha * float(s);
    }
}

const char* gemm_backend_name() {
#if defined(MMKIT_USE_DNNL)
  return "oneDNN";
#elif defined(MMKIT_USE_OPENBLAS)
  return "OpenBLAS";
#else
  return "reference";
#endif
}

}  // namespace mmkit::ops
