#include "mmkit/ops/gemm_bf16.h"

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/ops/gemm.h"

#if defined(MMKIT_USE_DNNL)
#include <dnnl.hpp>
#endif

namespace mmkit::ops {

namespace {

constexpr int64_t kParallelMin = 1 << 15;

inline uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;  // nearest even
  const uint32_t nan = (x >> 16) | 0x40u;                           // quiet, sign kept
  return uint16_t((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

inline float from_bf16(uint16_t h) {
  const uint32_t x = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// The f32 route: widen the stored extent of each operand ((rows - 1) * ld + cols values) and call
// gemm; the same products of the same bf16 values, summed in f32.
void gemm_bf16_widened(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                       int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t na = ta ? (K - 1) * lda + M : (M - 1) * lda + K;
  const int64_t nb = tb ? (N - 1) * ldb + K : (K - 1) * ldb + N;
  std::vector<float> a(static_cast<size_t>(na)), b(static_cast<size_t>(nb));
  bf16_to_f32(A, a.data(), na);
  bf16_to_f32(B, b.data(), nb);
  gemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, C, ldc);
}

#if defined(MMKIT_USE_DNNL)

using dt = dnnl::memory::data_type;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& thread_stream() {
  static thread_local dnnl::stream s(cpu_engine());
  return s;
}

// Row-major [rows, cols] with leading dimension ld, read transposed or not: the logical [r, c]
// operand's strides.
dnnl::memory::dims strides(bool trans, int64_t ld) {
  return trans ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1};
}

// One primitive per (shape, transposes, leading dimensions, alpha, beta): fixed shapes let oneDNN
// pick its brgemm kernels (with run-time sizes 2.6 falls back to a far slower path).
using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float>;
struct Prim {
  dnnl::matmul mm;
  bool ok = false;
};
std::mutex cache_mu;
std::map<Key, Prim> cache;
std::string impl_name = "(no bf16 GEMM run yet)";

const Prim& primitive(const Key& k) {
  std::lock_guard<std::mutex> lock(cache_mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  // A step has a few dozen shapes; a text tower that stops at each batch's last token adds a few
  // per caption length. Bounded all the same (dropping them costs only their re-creation).
  if (cache.size() >= 2048) cache.clear();
  const auto [ta, tb, M, N, K, lda, ldb, ldc, alpha, beta] = k;
  Prim p;
  try {
    dnnl::memory::desc a({M, K}, dt::bf16, strides(ta, lda));
    dnnl::memory::desc b({K, N}, dt::bf16, strides(tb, ldb));
    dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.f) attr.set_output_scales(0, {alpha});
    if (beta != 0.f) {
      dnnl::post_ops po;
      po.append_sum(beta);
      attr.set_post_ops(po);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
    impl_name = std::string("oneDNN ") + pd.impl_info_str();
    p.mm = dnnl::matmul(pd);
    p.ok = true;
  } catch (const dnnl::error&) {
    impl_name = "f32 fallback";  // no bf16 matmul for this CPU or layout
  }
  return cache.emplace(k, std::move(p)).first->second;
}

#endif

}  // namespace

void f32_to_bf16(const float* x, uint16_t* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}

void bf16_to_f32(const uint16_t* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = from_bf16(x[i]);
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
#if defined(MMKIT_USE_DNNL)
  const Prim& p = primitive(Key{ta, tb, M, N, K, lda, ldb, ldc, alpha, beta});
  if (p.ok) {
    using tag_dims = dnnl::memory::dims;
    dnnl::memory a({{M, K}, dt::bf16, strides(ta, lda)}, cpu_engine(), const_cast<uint16_t*>(A));
    dnnl::memory b({{K, N}, dt::bf16, strides(tb, ldb)}, cpu_engine(), const_cast<uint16_t*>(B));
    dnnl::memory c({{M, N}, dt::f32, tag_dims{ldc, 1}}, cpu_engine(), C);
    dnnl::stream& s = thread_stream();
    p.mm.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
    return;
  }
#endif
  gemm_bf16_widened(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                         int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = from_bf16(ta ? A[k * lda + i] : A[i * lda + k]);
        const float b = from_bf16(tb ? B[j * ldb + k] : B[k * ldb + j]);
        s += double(a) * b;
      }
      const float c = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = c + alpha * float(s);
    }
}

std::string gemm_bf16_backend_name() {
#if defined(MMKIT_USE_DNNL)
  std::lock_guard<std::mutex> lock(cache_mu);
  return impl_name;
#else
  return "f32 fallback";
#endif
}

}  // namespace mmkit::ops
