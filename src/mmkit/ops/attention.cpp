#include "mmkit/ops/attention.h"

#include <cstddef>
#include <limits>
#include <vector>

#include "mmkit/ops/softmax.h"

namespace mmkit::ops {

// Per-thread scratch; grows to the largest size seen, so steady state does
// not allocate.
static float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// S[Tq,Tk] = scale * Q K^T via K^T staged in kt [dh, Tk], so the inner loop
// runs over keys (vectorises for any head size).
static void scores(const AttentionDims& d, const float* q, const float* k, float* kt, float* S) {
  for (int64_t j = 0; j < d.Tk; ++j)
    for (int64_t c = 0; c < d.dh; ++c) kt[c * d.Tk + j] = k[j * d.ldk + c];
  for (int64_t i = 0; i < d.Tq; ++i) {
    float* s = S + i * d.Tk;
    for (int64_t j = 0; j < d.Tk; ++j) s[j] = 0.f;
    const float* qi = q + i * d.ldq;
    for (int64_t c = 0; c < d.dh; ++c) {
      float a = qi[c] * d.scale;
      const float* kr = kt + c * d.Tk;
#pragma omp simd
      for (int64_t j = 0; j < d.Tk; ++j) s[j] += a * kr[j];
    }
  }
}

static void mask_and_softmax(const AttentionDims& d, const uint8_t* pad, float* S) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < d.Tq; ++i) {
    float* s = S + i * d.Tk;
    if (pad)
      for (int64_t j = 0; j < d.Tk; ++j)
        if (pad[j]) s[j] = ninf;
    if (d.causal)
      for (int64_t j = i + (d.Tk - d.Tq) + 1; j < d.Tk; ++j) s[j] = ninf;
    softmax_row_inplace(s, d.Tk);
  }
}

void attention_forward(const AttentionDims& d, const float* q, const float* k, const float* v,
                       const uint8_t* key_pad, float* out, float* probs) {
  const int64_t D = d.H * d.dh;
#pragma omp parallel
  {
    static thread_local std::vector<float> kt_buf, s_buf;
    float* kt = scratch(kt_buf, size_t(d.dh * d.Tk));
    float* Sbuf = probs ? nullptr : scratch(s_buf, size_t(d.Tq * d.Tk));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.H; ++h) {
        const float* qb = q + b * d.Tq * d.ldq + h * d.dh;
        const float* kb = k + b * d.Tk * d.ldk + h * d.dh;
        const float* vb = v + b * d.Tk * d.ldv + h * d.dh;
        float* S = probs ? probs + (b * d.H + h) * d.Tq * d.Tk : Sbuf;
        scores(d, qb, kb, kt, S);
        mask_and_softmax(d, key_pad ? key_pad + b * d.Tk : nullptr, S);
        // out[i, :] = sum_j P[i, j] v[j, :]
        for (int64_t i = 0; i < d.Tq; ++i) {
          float* o = out + (b * d.Tq + i) * D + h * d.dh;
          for (int64_t c = 0; c < d.dh; ++c) o[c] = 0.f;
          const float* p = S + i * d.Tk;
          for (int64_t j = 0; j < d.Tk; ++j) {
            float pj = p[j];
            if (pj == 0.f) continue;
            const float* vr = vb + j * d.ldv;
#pragma omp simd
            for (int64_t c = 0; c < d.dh; ++c) o[c] += pj * vr[c];
          }
        }
      }
  }
}

void attention_backward(const AttentionDims& d, const float* q, const float* k, const float* v,
                        const float* probs, const float* dout, float* dq, float* dk, float* dv) {
  const int64_t D = d.H * d.dh;
#pragma omp parallel
  {
    static thread_local std::vector<float> vt_buf, ds_buf;
    float* vt = scratch(vt_buf, size_t(d.dh * d.Tk));
    float* dS = scratch(ds_buf, size_t(d.Tq * d.Tk));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.H; ++h) {
        const float* qb = q + b * d.Tq * d.ldq + h * d.dh;
        const float* kb = k + b * d.Tk * d.ldk + h * d.dh;
        const float* vb = v + b * d.Tk * d.ldv + h * d.dh;
        const float* P = probs + (b * d.H + h) * d.Tq * d.Tk;
        const float* dob = dout + b * d.Tq * D + h * d.dh;
        for (int64_t j = 0; j < d.Tk; ++j)
          for (int64_t c = 0; c < d.dh; ++c) vt[c * d.Tk + j] = vb[j * d.ldv + c];
        for (int64_t i = 0; i < d.Tq; ++i) {
          const float* go = dob + i * D;
          const float* p = P + i * d.Tk;
          float* ds = dS + i * d.Tk;
          // dP[i, j] = dout[i] . v[j]
          for (int64_t j = 0; j < d.Tk; ++j) ds[j] = 0.f;
          for (int64_t c = 0; c < d.dh; ++c) {
            float g = go[c];
            const float* vr = vt + c * d.Tk;
#pragma omp simd
            for (int64_t j = 0; j < d.Tk; ++j) ds[j] += g * vr[j];
          }
          // dS = P * (dP - sum_j P dP), then fold in the score scale.
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j < d.Tk; ++j) dot += p[j] * ds[j];
#pragma omp simd
          for (int64_t j = 0; j < d.Tk; ++j) ds[j] = p[j] * (ds[j] - dot) * d.scale;
          // dv[j] += P[i, j] dout[i]
          if (dv)
            for (int64_t j = 0; j < d.Tk; ++j) {
              float pj = p[j];
              if (pj == 0.f) continue;
              float* dvr = dv + b * d.Tk * d.ldv + h * d.dh + j * d.ldv;
#pragma omp simd
              for (int64_t c = 0; c < d.dh; ++c) dvr[c] += pj * go[c];
            }
          // dq[i] += sum_j dS[i, j] k[j]
          if (dq) {
            float* dqr = dq + b * d.Tq * d.ldq + h * d.dh + i * d.ldq;
            for (int64_t j = 0; j < d.Tk; ++j) {
              float s = ds[j];
              if (s == 0.f) continue;
              const float* kr = kb + j * d.ldk;
#pragma omp simd
              for (int64_t c = 0; c < d.dh; ++c) dqr[c] += s * kr[c];
            }
          }
          // dk[j] += dS[i, j] q[i]
          if (dk) {
            const float* qi = qb + i * d.ldq;
            for (int64_t j = 0; j < d.Tk; ++j) {
              float s = ds[j];
              if (s == 0.f) continue;
              float* dkr = dk + b * d.Tk * d.ldk + h * d.dh + j * d.ldk;
#pragma omp simd
              for (int64_t c = 0; c < d.dh; ++c) dkr[c] += s * qi[c];
            }
          }
        }
      }
  }
}

}  // namespace mmkit::ops
