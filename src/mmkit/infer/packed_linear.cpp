#include "mmkit/infer/packed_linear.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <unordered_map>

#include "mmkit/core/error.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/ops/vecmath.h"

#if defined(MMKIT_USE_DNNL)
#include <dnnl.hpp>
#endif
#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace mmkit::infer {

const char* weight_kind_name(WeightKind k) {
  switch (k) {
    case WeightKind::f32: return "f32";
    case WeightKind::f16: return "f16";
    case WeightKind::bf16: return "bf16";
    case WeightKind::int8: return "int8";
  }
  return "?";
}

namespace {

constexpr int64_t kParallelMin = 1 << 14;

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

inline float act(Epilogue ep, float v) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  if (ep == Epilogue::gelu) return 0.5f * v * (1.f + ops::erf_approx(v * kInvSqrt2));
  if (ep == Epilogue::quick_gelu) return v * ops::sigmoid_approx(1.702f * v);
  if (ep == Epilogue::gelu_tanh)  // 0.5 v (1 + tanh(u)) = v sigmoid(2 u), see ops/activation.h
    return v * ops::sigmoid_approx(2.f * 0.7978845608028654f * (v + 0.044715f * v * v * v));
  return v;
}

// The int8 output pass, one instantiation per epilogue so the inner loop is branch-free and
// vectorises: y[m, n] (=, or += for residual) act(acc[m, n] * sx[m] * ws[n] + b[n]).
template <Epilogue kEp>
[[maybe_unused]] void rescale_rows(const int32_t* acc, const float* sx, const float* ws, const float* b, float* y,
                                   int64_t M, int64_t N) {
#pragma omp parallel for if (M * N > kParallelMin)
  for (int64_t m = 0; m < M; ++m) {
    const int32_t* a = acc + m * N;
    float* yr = y + m * N;
    const float s = sx[m];
    if (b) {
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        const float v = float(a[n]) * (s * ws[n]) + b[n];
        if constexpr (kEp == Epilogue::residual) yr[n] += v;
        else yr[n] = act(kEp, v);
      }
    } else {
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        const float v = float(a[n]) * (s * ws[n]);
        if constexpr (kEp == Epilogue::residual) yr[n] += v;
        else yr[n] = act(kEp, v);
      }
    }
  }
}

// f16 -> f32 for n values (the per-call weight conversion of f16 layers).
void f16_to_f32_n(const uint16_t* h, float* f, int64_t n) {
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t i0 = 0; i0 < n; i0 += 4096) {
    const int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
    int64_t i = i0;
#if defined(__F16C__)
    for (; i + 8 <= i1; i += 8)
      _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
#endif
    for (; i < i1; ++i) {
      // Scalar IEEE binary16 widening (exact), as io::f16_to_f32.
      const uint32_t sign = uint32_t(h[i] & 0x8000) << 16, e = (h[i] >> 10) & 0x1f, m = h[i] & 0x3ff;
      float v;
      if (e == 0) {
        v = float(m) * 5.9604644775390625e-8f;
        v = sign ? -v : v;
      } else {
        uint32_t bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
        std::memcpy(&v, &bits, 4);
      }
      f[i] = v;
    }
  }
}

// f32 -> bf16, round to nearest even (finite activations only; NaN would not survive, and none
// reach here: weights are checked finite at load).
inline uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

[[maybe_unused]] inline float from_bf16(uint16_t b) {
  uint32_t x = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace

void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int8_t* q, float* s) {
#pragma omp parallel for if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float m = 0.f;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, std::fabs(xr[c]));
    const float inv = m > 0.f ? 127.f / m : 0.f;
    s[r] = m / 127.f;
    int8_t* qr = q + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) qr[c] = int8_t(std::nearbyint(xr[c] * inv));
  }
}

#if defined(MMKIT_USE_DNNL)

// oneDNN checks that a primitive runs on a stream of its own engine: one CPU engine for all layers.
const dnnl::engine& cpu_engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

struct PackedLinear::Impl {
  dnnl::engine eng = cpu_engine();
  dnnl::memory::data_type src_dt = dnnl::memory::data_type::f32, dst_dt = dnnl::memory::data_type::f32,
                          w_dt = dnnl::memory::data_type::f32;
  dnnl::matmul plain;             // reads the weights where they are ([out, in] row-major = "ba")
  dnnl::memory::desc plain_w_md;
  bool has_plain = false;
  dnnl::matmul packed_prim;       // reads `packed` (oneDNN's preferred blocked layout)
  dnnl::memory::desc packed_w_md;
  dnnl::memory packed;
  bool has_packed = false;
  int calls = 0;
  std::function<void()> release;  // drops the source's pages once packed
  std::string name;
};

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::stream& thread_stream(const dnnl::engine&) {
  static thread_local dnnl::stream s(cpu_engine());  // one stream per calling thread
  return s;
}

// The matmul for weights in layout `wtag` (ba = as stored, any = oneDNN's choice), run-time M.
dnnl::matmul::primitive_desc make_pd(const PackedLinear::Impl& im, int64_t K, int64_t N, bool bias, Epilogue ep,
                                     tag wtag) {
  const dnnl::memory::dim M = DNNL_RUNTIME_DIM_VAL;
  const bool int8 = im.src_dt == dt::s8;
  dnnl::memory::desc src_md({M, K}, im.src_dt, tag::ab), dst_md({M, N}, im.dst_dt, tag::ab);
  dnnl::memory::desc w_md({K, N}, im.w_dt, wtag);
  dnnl::primitive_attr attr;
  dnnl::post_ops po;
  if (!int8) {
    if (ep == Epilogue::gelu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    if (ep == Epilogue::quick_gelu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.702f, 0.f);
    if (ep == Epilogue::gelu_tanh) po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
    if (ep == Epilogue::residual) po.append_sum(1.f);
    attr.set_post_ops(po);
  }
  if (!int8 && bias) {
    dnnl::memory::desc b_md({1, N}, dt::f32, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), attr, im.eng);
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, dst_md), attr, im.eng);
}

}  // namespace

// Packing copies the weights into a layout oneDNN reads faster (~20% at 50 rows, level at 1600),
// but the copy costs page faults and zeroing for the whole tower: deferred to the second call, so a
// one-shot run (one image through `mmkit embed`) reads the mapped file in place and copies nothing.
void PackedLinear::pack() const {
  Impl& im = *impl_;
  if (im.has_packed) return;
  auto pd = make_pd(im, in_, out_, kind_ != WeightKind::int8 && bias_, ep_, tag::any);
  im.packed_prim = dnnl::matmul(pd);
  im.packed_w_md = pd.weights_desc();
  dnnl::memory src_mem({{in_, out_}, im.w_dt, tag::ba}, im.eng, const_cast<void*>(w_));
  im.packed = dnnl::memory(im.packed_w_md, im.eng);
  dnnl::reorder(src_mem, im.packed).execute(thread_stream(im.eng), src_mem, im.packed);
  thread_stream(im.eng).wait();
  im.has_packed = true;
  if (im.release) im.release();
}

PackedLinear::PackedLinear(const LinearSource& s, Epilogue ep)
    : impl_(std::make_unique<Impl>()), kind_(s.kind), ep_(ep), in_(s.in), out_(s.out), w_(s.w),
      scale_(s.scale), bias_(s.bias) {
  MMKIT_CHECK(s.w && s.in > 0 && s.out > 0, "PackedLinear ", s.name, ": no weights");
  MMKIT_CHECK(s.kind != WeightKind::int8 || s.scale, "PackedLinear ", s.name, ": int8 weights need scales");
  Impl& im = *impl_;
  const bool int8 = s.kind == WeightKind::int8;
  im.src_dt = int8 ? dt::s8 : s.kind == WeightKind::bf16 ? dt::bf16 : dt::f32;
  im.w_dt = im.src_dt;  // f16 weights reach the GEMM widened to f32 (per call, see forward)
  im.dst_dt = int8 ? dt::s32 : dt::f32;
  im.release = s.release;
  im.name = s.name;
  try {
    auto pd = make_pd(im, s.in, s.out, !int8 && s.bias, ep, tag::ba);
    im.plain = dnnl::matmul(pd);
    im.plain_w_md = pd.weights_desc();
    im.has_plain = true;
  } catch (const dnnl::error& e) {
    // No in-place kernel for this type: f16 (widened into scratch) cannot do without one.
    MMKIT_CHECK(s.kind != WeightKind::f16, "PackedLinear ", s.name, ": oneDNN has no f32 matmul for [", s.in,
                " -> ", s.out, "] (", e.what(), ")");
  }
  if (!im.has_plain) {
    try {
      pack();
    } catch (const dnnl::error& e) {
      fail("PackedLinear ", s.name, ": oneDNN has no ", weight_kind_name(s.kind), " matmul for [", s.in, " -> ",
           s.out, "] on this CPU (", e.what(), ")");
    }
  }
}

size_t PackedLinear::packed_bytes() const {
  return impl_ && impl_->has_packed ? impl_->packed_w_md.get_size() : 0;
}

// The first call reads the weights as stored ([out, in]), later calls the packed copy. oneDNN's
// f32 / bf16 matmul (gemm:jit) gives the same bits for both layouts from 16 rows up, but not below:
// measured over M = 1..12, 16, 20, 24, 32, 48, 64, 100 for [768 -> 2304 / 768 / 3072], [3072 -> 768],
// [512 -> 1536], [2048 -> 512] and the test models' small shapes, every M <= 12 differed in ~90% of
// the outputs by up to ~1e-6 relative (its small-row kernels depend on the layout), every M >= 16
// agreed bit for bit. Such M are common here — the class-token / pooling-head layers run on one row
// per image, a short text on a few tokens — so a model's first call and its later ones disagreed in
// the last bits. Calls with fewer rows run padded to kMinRows (zero rows, then dropped): one GEMM
// regime for every call, so repeated calls give the same bits. int8 sums are exact integers in any
// order and f16 always reads its widened copy in place: neither is padded.
constexpr int64_t kMinRows = 16;

void PackedLinear::forward(const float* x, int64_t M_in, float* y_out, LinearScratch& s) const {
  if (M_in == 0) return;
  Impl& im = *impl_;
  const int64_t K = in_, N = out_;
  const bool pad = (kind_ == WeightKind::f32 || kind_ == WeightKind::bf16) && M_in < kMinRows;
  const int64_t M = pad ? kMinRows : M_in;  // rows the GEMM runs on
  if (pad) {
    float* xp = grow(s.xp, size_t(M * K));
    std::memcpy(xp, x, size_t(M_in * K) * 4);
    std::memset(xp + M_in * K, 0, size_t((M - M_in) * K) * 4);
    x = xp;
    float* yp = grow(s.yp, size_t(M * N));
    if (ep_ == Epilogue::residual) std::memcpy(yp, y_out, size_t(M_in * N) * 4);  // the sum post-op adds to it
    std::memset(yp + M_in * N, 0, size_t((M - M_in) * N) * 4);
  }
  float* y = pad ? s.yp.data() : y_out;
  const void* src = x;
  if (kind_ == WeightKind::int8) {
    int8_t* xq = grow(s.xq, size_t(M * K));
    float* xs = grow(s.xs, size_t(M));
    quantize_rows_s8(x, M, K, xq, xs);
    src = xq;
  } else if (kind_ == WeightKind::bf16) {
    uint16_t* xh = grow(s.xh, size_t(M * K));
#pragma omp parallel for simd if (M * K > kParallelMin)
    for (int64_t i = 0; i < M * K; ++i) xh[i] = to_bf16(x[i]);
    src = xh;
  }
  if (!im.has_packed && kind_ != WeightKind::f16 && im.calls++ >= 1) pack();
  const void* w = w_;
  if (kind_ == WeightKind::f16) {
    float* wf = grow(s.wf, size_t(N * K));
    f16_to_f32_n(static_cast<const uint16_t*>(w_), wf, N * K);
    w = wf;
  }
  void* dst = kind_ == WeightKind::int8 ? static_cast<void*>(grow(s.acc, size_t(M * N))) : static_cast<void*>(y);
  dnnl::memory src_m({{M, K}, im.src_dt, tag::ab}, im.eng, const_cast<void*>(src));
  dnnl::memory dst_m({{M, N}, im.dst_dt, tag::ab}, im.eng, dst);
  std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_DST, dst_m}};
  args[DNNL_ARG_WEIGHTS] = im.has_packed ? im.packed : dnnl::memory(im.plain_w_md, im.eng, const_cast<void*>(w));
  if (kind_ != WeightKind::int8 && bias_)
    args[DNNL_ARG_BIAS] = dnnl::memory({{1, N}, dt::f32, tag::ab}, im.eng, const_cast<float*>(bias_));
  dnnl::stream& st = thread_stream(im.eng);
  (im.has_packed ? im.packed_prim : im.plain).execute(st, args);
  st.wait();
  if (pad) std::memcpy(y_out, y, size_t(M_in * N) * 4);
  if (kind_ != WeightKind::int8) return;
  // y = act(acc * sx[m] * scale[n] + b[n])  (residual: y += acc * sx[m] * scale[n] + b[n])
  const int32_t* acc = s.acc.data();
  const float* xs = s.xs.data();
  switch (ep_) {
    case Epilogue::none: rescale_rows<Epilogue::none>(acc, xs, scale_, bias_, y, M, N); break;
    case Epilogue::gelu: rescale_rows<Epilogue::gelu>(acc, xs, scale_, bias_, y, M, N); break;
    case Epilogue::quick_gelu: rescale_rows<Epilogue::quick_gelu>(acc, xs, scale_, bias_, y, M, N); break;
    case Epilogue::gelu_tanh: rescale_rows<Epilogue::gelu_tanh>(acc, xs, scale_, bias_, y, M, N); break;
    case Epilogue::residual: rescale_rows<Epilogue::residual>(acc, xs, scale_, bias_, y, M, N); break;
  }
}

#else  // no oneDNN: the same arithmetic on ops::gemm and plain loops

struct PackedLinear::Impl {};

PackedLinear::PackedLinear(const LinearSource& s, Epilogue ep)
    : impl_(std::make_unique<Impl>()), kind_(s.kind), ep_(ep), in_(s.in), out_(s.out), w_(s.w),
      scale_(s.scale), bias_(s.bias) {
  MMKIT_CHECK(s.w && s.in > 0 && s.out > 0, "PackedLinear ", s.name, ": no weights");
  MMKIT_CHECK(s.kind != WeightKind::int8 || s.scale, "PackedLinear ", s.name, ": int8 weights need scales");
}

size_t PackedLinear::packed_bytes() const { return 0; }
void PackedLinear::pack() const {}

void PackedLinear::forward(const float* x, int64_t M, float* y, LinearScratch& s) const {
  if (M == 0) return;
  const int64_t K = in_, N = out_;
  const float* b = bias_;
  auto finish = [&](int64_t m, int64_t n, float v) {
    v += b ? b[n] : 0.f;
    if (ep_ == Epilogue::residual) y[m * N + n] += v;
    else y[m * N + n] = act(ep_, v);
  };
  if (kind_ == WeightKind::int8) {
    int8_t* xq = grow(s.xq, size_t(M * K));
    float* xs = grow(s.xs, size_t(M));
    quantize_rows_s8(x, M, K, xq, xs);
    const int8_t* w = static_cast<const int8_t*>(w_);
#pragma omp parallel for
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int32_t a = 0;
        for (int64_t k = 0; k < K; ++k) a += int32_t(xq[m * K + k]) * int32_t(w[n * K + k]);
        finish(m, n, float(a) * xs[m] * scale_[n]);
      }
    return;
  }
  const float* w = static_cast<const float*>(w_);
  if (kind_ != WeightKind::f32) {
    float* wf = grow(s.wf, size_t(N * K));
    const uint16_t* h = static_cast<const uint16_t*>(w_);
    if (kind_ == WeightKind::f16) f16_to_f32_n(h, wf, N * K);
    else
      for (int64_t i = 0; i < N * K; ++i) wf[i] = from_bf16(h[i]);
    w = wf;
  }
  float* t = reinterpret_cast<float*>(grow(s.acc, size_t(M * N)));
  ops::gemm(false, true, M, N, K, 1.f, x, K, w, K, 0.f, t, N);
#pragma omp parallel for if (M * N > kParallelMin)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) finish(m, n, t[m * N + n]);
}

#endif

PackedLinear::~PackedLinear() = default;
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;

}  // namespace mmkit::infer
