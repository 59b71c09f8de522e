#include "mmkit/ops/attention.h"

#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/ops/softmax.h"

namespace mmkit::ops {

// Per-thread scratch; grows to the largest size seen, so steady state does
// not allocate.
static float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// The head size is a template parameter for the common sizes (16..128) so
// the per-row accumulators live in vector registers and the inner loops
// unroll completely; kDh = 0 is the generic fallback (runtime d.dh).
// Keys are processed in a padded width Tkp (multiple of 16) so rows of the
// transposed K/V staging buffers are whole AVX-512 vectors.

static inline int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// kt[c, j] = k[j, c] for c < dh, zero for padding keys.
static void stage_transposed(const float* k, int64_t ld, int64_t Tk, int64_t Tkp, int64_t dh,
                             float* kt) {
  for (int64_t c = 0; c < dh; ++c)
    for (int64_t j = Tk; j < Tkp; ++j) kt[c * Tkp + j] = 0.f;
  for (int64_t j = 0; j < Tk; ++j) {
    const float* kr = k + j * ld;
    for (int64_t c = 0; c < dh; ++c) kt[c * Tkp + j] = kr[c];
  }
}

// s[0:Tkp] = a * sum_c x[c] * mt[c, 0:Tkp]
template <int kDh>
static inline void row_times_staged(const float* x, const float* mt, int64_t dh_rt, int64_t Tkp,
                                    float a, float* s) {
  const int64_t dh = kDh ? kDh : dh_rt;
  for (int64_t j0 = 0; j0 < Tkp; j0 += 16) {
    float acc[16] = {0};
    for (int64_t c = 0; c < dh; ++c) {
      const float xc = x[c];
      const float* m = mt + c * Tkp + j0;
#pragma omp simd
      for (int j = 0; j < 16; ++j) acc[j] += xc * m[j];
    }
#pragma omp simd
    for (int j = 0; j < 16; ++j) s[j0 + j] = acc[j] * a;
  }
}

// out[0:dh] (=, or += when kAcc) sum_j w[j] * rows[j*ld + 0:dh], j < n, rows
// taken with stride `ld`; w may be read with stride `ws`.
template <int kDh, bool kAcc>
static inline void weighted_rows(const float* w, int64_t ws, const float* rows, int64_t ld,
                                 int64_t n, int64_t dh_rt, float* out) {
  if constexpr (kDh > 0) {
    float acc[kDh] = {0};
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j * ws];
      const float* r = rows + j * ld;
#pragma omp simd
      for (int c = 0; c < kDh; ++c) acc[c] += wj * r[c];
    }
#pragma omp simd
    for (int c = 0; c < kDh; ++c) out[c] = kAcc ? out[c] + acc[c] : acc[c];
  } else {
    if (!kAcc)
      for (int64_t c = 0; c < dh_rt; ++c) out[c] = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j * ws];
      const float* r = rows + j * ld;
#pragma omp simd
      for (int64_t c = 0; c < dh_rt; ++c) out[c] += wj * r[c];
    }
  }
}

// R query rows at once (forward): each staged key row or value row loaded from L1 feeds R
// accumulators instead of one. Per element the sums run in the same order as the one-row
// functions above, so the results are bit-identical.
template <int kDh, int R>
static inline void rows_times_staged(const float* x, int64_t ldx, const float* mt, int64_t Tkp, float a,
                                     float* s, int64_t lds) {
  for (int64_t j0 = 0; j0 < Tkp; j0 += 16) {
    float acc[R][16] = {};
    for (int64_t c = 0; c < kDh; ++c) {
      const float* m = mt + c * Tkp + j0;
      for (int r = 0; r < R; ++r) {
        const float xc = x[r * ldx + c];
#pragma omp simd
        for (int j = 0; j < 16; ++j) acc[r][j] += xc * m[j];
      }
    }
    for (int r = 0; r < R; ++r)
#pragma omp simd
      for (int j = 0; j < 16; ++j) s[r * lds + j0 + j] = acc[r][j] * a;
  }
}

template <int kDh, int R>
static inline void weighted_rows_block(const float* w, int64_t ldw, const float* rows, int64_t ld, int64_t n,
                                       float* out, int64_t ldo) {
  float acc[R][kDh] = {};
  for (int64_t j = 0; j < n; ++j) {
    const float* v = rows + j * ld;
    for (int r = 0; r < R; ++r) {
      const float wj = w[r * ldw + j];
#pragma omp simd
      for (int c = 0; c < kDh; ++c) acc[r][c] += wj * v[c];
    }
  }
  for (int r = 0; r < R; ++r)
#pragma omp simd
    for (int c = 0; c < kDh; ++c) out[r * ldo + c] = acc[r][c];
}

// Rows per block: as many as keep the accumulators in the 32 vector registers.
template <int kDh>
constexpr int kRowBlock = kDh == 0 ? 1 : kDh <= 64 ? 4 : 2;

static void mask_and_softmax(const AttentionDims& d, const uint8_t* pad, float* S, int64_t ldS) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < d.Tq; ++i) {
    float* s = S + i * ldS;
    if (pad)
      for (int64_t j = 0; j < d.Tk; ++j)
        if (pad[j]) s[j] = ninf;
    if (d.causal)
      for (int64_t j = i + (d.Tk - d.Tq) + 1; j < d.Tk; ++j) s[j] = ninf;
    softmax_row_inplace(s, d.Tk);
  }
}

// k_base/v_base (gather form) replace the dense batch offsets b*Tk*ld when
// non-null. Small problems (one decoding step of one sequence) run on the
// calling thread: waking the pool costs more than the work.
template <int kDh>
static void forward_impl(const AttentionDims& d, const float* q, const float* k, const float* v,
                         const float* const* k_base, const float* const* v_base,
                         const uint8_t* key_pad, float* out, float* probs) {
  const int64_t D = d.H * d.dh, Tkp = pad16(d.Tk);
  const bool parallel = d.B * d.H * d.Tq * Tkp * d.dh >= (int64_t(1) << 15);
#pragma omp parallel if (parallel)
  {
    static thread_local std::vector<float> kt_buf, s_buf;
    float* kt = scratch(kt_buf, size_t(d.dh * Tkp));
    float* Sp = scratch(s_buf, size_t(d.Tq * Tkp));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.H; ++h) {
        const float* qb = q + b * d.Tq * d.ldq + h * d.dh;
        const float* kb = (k_base ? k_base[b] : k + b * d.Tk * d.ldk) + h * d.dh;
        const float* vb = (v_base ? v_base[b] : v + b * d.Tk * d.ldv) + h * d.dh;
        stage_transposed(kb, d.ldk, d.Tk, Tkp, d.dh, kt);
        constexpr int R = kRowBlock<kDh>;
        int64_t i = 0;
        if constexpr (R > 1)
          for (; i + R <= d.Tq; i += R)
            rows_times_staged<kDh, R>(qb + i * d.ldq, d.ldq, kt, Tkp, d.scale, Sp + i * Tkp, Tkp);
        for (; i < d.Tq; ++i)
          row_times_staged<kDh>(qb + i * d.ldq, kt, d.dh, Tkp, d.scale, Sp + i * Tkp);
        mask_and_softmax(d, key_pad ? key_pad + b * d.Tk : nullptr, Sp, Tkp);
        i = 0;
        if constexpr (R > 1)
          for (; i + R <= d.Tq; i += R)
            weighted_rows_block<kDh, R>(Sp + i * Tkp, Tkp, vb, d.ldv, d.Tk, out + (b * d.Tq + i) * D + h * d.dh, D);
        for (; i < d.Tq; ++i)
          weighted_rows<kDh, false>(Sp + i * Tkp, 1, vb, d.ldv, d.Tk, d.dh,
                                    out + (b * d.Tq + i) * D + h * d.dh);
        if (probs) {
          float* P = probs + (b * d.H + h) * d.Tq * d.Tk;
          for (int64_t i = 0; i < d.Tq; ++i)
            std::memcpy(P + i * d.Tk, Sp + i * Tkp, size_t(d.Tk) * sizeof(float));
        }
      }
  }
}

template <int kDh>
static void backward_impl(const AttentionDims& d, const float* q, const float* k, const float* v,
                          const float* probs, const float* dout, float* dq, float* dk,
                          float* dv) {
  const int64_t D = d.H * d.dh, Tkp = pad16(d.Tk);
#pragma omp parallel
  {
    static thread_local std::vector<float> vt_buf, ds_buf;
    float* vt = scratch(vt_buf, size_t(d.dh * Tkp));
    float* dS = scratch(ds_buf, size_t(d.Tq * Tkp));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.H; ++h) {
        const float* qb = q + b * d.Tq * d.ldq + h * d.dh;
        const float* kb = k + b * d.Tk * d.ldk + h * d.dh;
        const float* vb = v + b * d.Tk * d.ldv + h * d.dh;
        const float* P = probs + (b * d.H + h) * d.Tq * d.Tk;
        const float* dob = dout + b * d.Tq * D + h * d.dh;
        stage_transposed(vb, d.ldv, d.Tk, Tkp, d.dh, vt);
        // dS = P * (dP - rowsum(P * dP)) * scale, dP = dout v^T
        for (int64_t i = 0; i < d.Tq; ++i) {
          float* ds = dS + i * Tkp;
          const float* p = P + i * d.Tk;
          row_times_staged<kDh>(dob + i * D, vt, d.dh, Tkp, 1.f, ds);
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j < d.Tk; ++j) dot += p[j] * ds[j];
#pragma omp simd
          for (int64_t j = 0; j < d.Tk; ++j) ds[j] = p[j] * (ds[j] - dot) * d.scale;
        }
        // dq[i] += sum_j dS[i, j] k[j]
        if (dq)
          for (int64_t i = 0; i < d.Tq; ++i)
            weighted_rows<kDh, true>(dS + i * Tkp, 1, kb, d.ldk, d.Tk, d.dh,
                                     dq + b * d.Tq * d.ldq + h * d.dh + i * d.ldq);
        // dk[j] += sum_i dS[i, j] q[i];  dv[j] += sum_i P[i, j] dout[i]
        if (dk)
          for (int64_t j = 0; j < d.Tk; ++j)
            weighted_rows<kDh, true>(dS + j, Tkp, qb, d.ldq, d.Tq, d.dh,
                                     dk + b * d.Tk * d.ldk + h * d.dh + j * d.ldk);
        if (dv)
          for (int64_t j = 0; j < d.Tk; ++j)
            weighted_rows<kDh, true>(P + j, d.Tk, dob, D, d.Tq, d.dh,
                                     dv + b * d.Tk * d.ldv + h * d.dh + j * d.ldv);
      }
  }
}

template <template <int> class F, class... A>
static void dispatch_dh(int64_t dh, A... a) {
  switch (dh) {
    case 16: F<16>::run(a...); break;
    case 32: F<32>::run(a...); break;
    case 64: F<64>::run(a...); break;
    case 128: F<128>::run(a...); break;
    default: F<0>::run(a...); break;
  }
}

template <int kDh>
struct Fwd {
  template <class... A>
  static void run(A... a) { forward_impl<kDh>(a...); }
};
template <int kDh>
struct Bwd {
  template <class... A>
  static void run(A... a) { backward_impl<kDh>(a...); }
};

void attention_forward(const AttentionDims& d, const float* q, const float* k, const float* v,
                       const uint8_t* key_pad, float* out, float* probs) {
  dispatch_dh<Fwd>(d.dh, d, q, k, v, static_cast<const float* const*>(nullptr),
                   static_cast<const float* const*>(nullptr), key_pad, out, probs);
}

void attention_forward_gather(const AttentionDims& d, const float* q, const float* const* k_base,
                              const float* const* v_base, float* out, float* probs) {
  MMKIT_CHECK(k_base && v_base, "attention_forward_gather: null key/value base pointers");
  dispatch_dh<Fwd>(d.dh, d, q, static_cast<const float*>(nullptr), static_cast<const float*>(nullptr),
                   k_base, v_base, static_cast<const uint8_t*>(nullptr), out, probs);
}

void attention_backward(const AttentionDims& d, const float* q, const float* k, const float* v,
                        const float* probs, const float* dout, float* dq, float* dk, float* dv) {
  dispatch_dh<Bwd>(d.dh, d, q, k, v, probs, dout, dq, dk, dv);
}

}  // namespace mmkit::ops
