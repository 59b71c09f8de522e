#include "mmkit/image/resample_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MMKIT_RESAMPLE_X86 1
#endif

#include "mmkit/core/error.h"

// Byte-exactness needs the tap weights computed with the same double roundings
// as Pillow (built for baseline x86-64, no FMA). With -march=native GCC's
// gnu++ default (-ffp-contract=fast) would fuse the cubic's a*b+c steps.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace mmkit {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22: headroom for 255 * (sum of |weights|) in int32
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys (1981) cubic convolution kernel with a = -0.5 (Catmull-Rom), written in
// the Horner forms whose double rounding Pillow's results depend on.
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

Taps make_taps(int in_size, int out_size, Filter f) {
  MMKIT_CHECK(in_size > 0 && out_size > 0, "make_taps: sizes must be positive, got ", in_size, " -> ", out_size);
  MMKIT_CHECK(f != Filter::nearest, "make_taps: nearest has no taps");
  double (*kernel)(double) = f == Filter::bicubic ? cubic : triangle;
  const double kernel_support = f == Filter::bicubic ? 2.0 : 1.0;
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = kernel_support * filterscale;
  const double inv_fs = 1.0 / filterscale;  // multiplied, not divided: Pillow's rounding
  Taps t;
  t.in_size = in_size;
  t.out_size = out_size;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.w.assign(size_t(out_size) * t.ksize, 0);
  std::vector<double> k(size_t(t.ksize));
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(int(center - support + 0.5), 0);  // int(): truncation, as C casts
    const int hi = std::min(int(center + support + 0.5), in_size);
    const int n = std::min(hi - lo, t.ksize);
    double sum = 0.0;
    for (int j = 0; j < n; ++j) {
      k[size_t(j)] = kernel((j + lo - center + 0.5) * inv_fs);
      sum += k[size_t(j)];
    }
    int32_t* dst = &t.w[size_t(i) * t.ksize];
    for (int j = 0; j < n; ++j) {
      const double v = (sum != 0.0 ? k[size_t(j)] / sum : k[size_t(j)]) * (1 << kPrecisionBits);
      dst[j] = int32_t(v < 0 ? v - 0.5 : v + 0.5);
    }
    t.first[size_t(i)] = lo;
    t.count[size_t(i)] = std::max(n, 0);
  }
  t.kpad = (t.ksize + 3) / 4 * 4;
  t.w4.assign(size_t(out_size) * t.kpad * 4, 0);
  for (int i = 0; i < out_size; ++i)
    for (int j = 0; j < t.count[size_t(i)]; ++j)
      for (int c = 0; c < 4; ++c) t.w4[(size_t(i) * t.kpad + j) * 4 + c] = t.w[size_t(i) * t.ksize + j];
  return t;
}

const Taps& cached_taps(int in_size, int out_size, Filter f) {
  // A few entries: a preprocessing call needs two (one per axis), and photo sets repeat sizes.
  struct Entry {
    int in = 0, out = 0;
    Filter f = Filter::bilinear;
    uint64_t used = 0;
    Taps taps;
  };
  thread_local Entry cache[8];
  thread_local uint64_t clock = 0;
  ++clock;
  Entry* victim = &cache[0];
  for (Entry& e : cache) {
    if (e.used && e.in == in_size && e.out == out_size && e.f == f) {
      e.used = clock;
      return e.taps;
    }
    if (e.used < victim->used) victim = &e;
  }
  victim->taps = make_taps(in_size, out_size, f);
  victim->in = in_size;
  victim->out = out_size;
  victim->f = f;
  victim->used = clock;
  return victim->taps;
}

// ---------------------------------------------------------------------------------------------
// Scalar reference.

namespace {

template <int C>
void rows_scalar(const uint8_t* in, size_t in_stride, int rows, const Taps& t, int x0, int x1, uint8_t* out,
                 size_t out_stride) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + size_t(y) * in_stride;
    uint8_t* dst = out + size_t(y) * out_stride;
    for (int x = x0; x < x1; ++x) {
      const int32_t* k = &t.w[size_t(x) * t.ksize];
      const uint8_t* s = src + size_t(t.first[size_t(x)]) * C;
      const int n = t.count[size_t(x)];
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = kHalf;
      for (int j = 0; j < n; ++j)
        for (int c = 0; c < C; ++c) acc[c] += int32_t(s[j * C + c]) * k[j];
      for (int c = 0; c < C; ++c) dst[size_t(x - x0) * C + c] = clip8(acc[c]);
    }
  }
}

// One output pixel x of one row, any C (the vector kernels' fallback at the right edge).
inline void pixel_scalar(const uint8_t* src, int C, const Taps& t, int x, uint8_t* dst) {
  const int32_t* k = &t.w[size_t(x) * t.ksize];
  const uint8_t* s = src + size_t(t.first[size_t(x)]) * C;
  const int n = t.count[size_t(x)];
  for (int c = 0; c < C; ++c) {
    int32_t acc = kHalf;
    for (int j = 0; j < n; ++j) acc += int32_t(s[j * C + c]) * k[j];
    dst[c] = clip8(acc);
  }
}

}  // namespace

void resample_rows_scalar(const uint8_t* in, size_t in_stride, int C, int rows, const Taps& t, int x0, int x1,
                          uint8_t* out, size_t out_stride) {
  switch (C) {
    case 1: return rows_scalar<1>(in, in_stride, rows, t, x0, x1, out, out_stride);
    case 2: return rows_scalar<2>(in, in_stride, rows, t, x0, x1, out, out_stride);
    case 3: return rows_scalar<3>(in, in_stride, rows, t, x0, x1, out, out_stride);
    case 4: return rows_scalar<4>(in, in_stride, rows, t, x0, x1, out, out_stride);
  }
  fail("resample_rows: unsupported channel count ", C);
}

void resample_cols_scalar(const uint8_t* in, size_t in_stride, int row0, const Taps& t, int y0, int y1,
                          size_t bytes, uint8_t* out, size_t out_stride) {
  // Accumulators per chunk of a row, so they stay in registers/L1 for any width.
  constexpr size_t kChunk = 256;
  int32_t acc[kChunk];
  for (int y = y0; y < y1; ++y) {
    const int32_t* k = &t.w[size_t(y) * t.ksize];
    const int n = t.count[size_t(y)];
    const uint8_t* base = in + size_t(t.first[size_t(y)] - row0) * in_stride;
    uint8_t* dst = out + size_t(y - y0) * out_stride;
    for (size_t i0 = 0; i0 < bytes; i0 += kChunk) {
      const size_t m = std::min(kChunk, bytes - i0);
      for (size_t i = 0; i < m; ++i) acc[i] = kHalf;
      for (int j = 0; j < n; ++j) {
        const uint8_t* s = base + size_t(j) * in_stride + i0;
        const int32_t kj = k[j];
        for (size_t i = 0; i < m; ++i) acc[i] += int32_t(s[i]) * kj;
      }
      for (size_t i = 0; i < m; ++i) dst[i0 + i] = clip8(acc[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Vector kernels. Same integer operations as above: products and sums in int32 (exact, as the
// weights are bounded so that no partial sum overflows — the reason for 22 bits), start value
// 2^21, arithmetic shift, clip to 0..255.

#ifdef MMKIT_RESAMPLE_X86
namespace {

// Whether all vector loads of output pixel x stay inside its row: groups of G taps are loaded as
// `load_bytes` bytes from pixel first + G*g.
inline bool row_loads_fit(const Taps& t, int x, int C, int G, int load_bytes) {
  const int n = t.count[size_t(x)];
  if (n == 0) return true;
  const int last_group = (n + G - 1) / G - 1;
  return int64_t(t.first[size_t(x)] + G * last_group) * C + load_bytes <= int64_t(t.in_size) * C;
}

// RGB RGB RGB RGB -> RGB0 RGB0 RGB0 RGB0 (bytes), for widening to one int32 lane per channel.
__attribute__((target("avx2"))) inline __m128i rgb_to_rgb0(__m128i v) {
  const __m128i m = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  return _mm_shuffle_epi8(v, m);
}

// 4 int32 sums -> 4 clipped bytes in the low 32 bits.
__attribute__((target("avx2"))) inline uint32_t pack4(__m128i acc) {
  const __m128i v = _mm_srai_epi32(acc, kPrecisionBits);
  const __m128i p16 = _mm_packus_epi32(v, v);  // negatives -> 0
  return uint32_t(_mm_cvtsi128_si32(_mm_packus_epi16(p16, p16)));  // > 255 -> 255
}

template <int C>
__attribute__((target("avx2"))) void rows_avx2(const uint8_t* in, size_t in_stride, int rows, const Taps& t,
                                               int x0, int x1, uint8_t* out, size_t out_stride) {
  static_assert(C == 3 || C == 4, "vector rows: RGB or RGBA");
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + size_t(y) * in_stride;
    uint8_t* dst = out + size_t(y) * out_stride;
    for (int x = x0; x < x1; ++x) {
      uint8_t* d = dst + size_t(x - x0) * C;
      if (!row_loads_fit(t, x, C, 2, 8)) {
        pixel_scalar(src, C, t, x, d);
        continue;
      }
      const uint8_t* s = src + size_t(t.first[size_t(x)]) * C;
      const int32_t* w = &t.w4[size_t(x) * t.kpad * 4];
      const int n = t.count[size_t(x)];
      __m256i acc = _mm256_setzero_si256();
      for (int j = 0; j < n; j += 2) {  // taps j, j+1 (a zero weight past count)
        __m128i px = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + j * C));
        if (C == 3) px = rgb_to_rgb0(px);
        const __m256i v = _mm256_cvtepu8_epi32(px);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * 4))));
      }
      const __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)),
                                        _mm_set1_epi32(kHalf));
      const uint32_t px = pack4(sum);
      if (C == 4 || x + 1 < x1) std::memcpy(d, &px, 4);  // RGB: the 4th byte is overwritten next
      else std::memcpy(d, &px, 3);
    }
  }
}

__attribute__((target("avx2"))) void cols_avx2(const uint8_t* in, size_t in_stride, int row0, const Taps& t,
                                               int y0, int y1, size_t bytes, uint8_t* out, size_t out_stride) {
  for (int y = y0; y < y1; ++y) {
    const int32_t* k = &t.w[size_t(y) * t.ksize];
    const int n = t.count[size_t(y)];
    const uint8_t* base = in + size_t(t.first[size_t(y)] - row0) * in_stride;
    uint8_t* dst = out + size_t(y - y0) * out_stride;
    size_t i = 0;
    for (; i + 16 <= bytes; i += 16) {
      __m256i a0 = _mm256_set1_epi32(kHalf), a1 = a0;
      for (int j = 0; j < n; ++j) {
        const __m128i px = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + size_t(j) * in_stride + i));
        const __m256i kj = _mm256_set1_epi32(k[j]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(px), kj));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(px, 8)), kj));
      }
      a0 = _mm256_srai_epi32(a0, kPrecisionBits);
      a1 = _mm256_srai_epi32(a1, kPrecisionBits);
      const __m128i p0 = _mm_packus_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
      const __m128i p1 = _mm_packus_epi32(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_packus_epi16(p0, p1));
    }
    for (; i < bytes; ++i) {
      int32_t acc = kHalf;
      for (int j = 0; j < n; ++j) acc += int32_t(base[size_t(j) * in_stride + i]) * k[j];
      dst[i] = clip8(acc);
    }
  }
}

#define MMKIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2")))

template <int C>
MMKIT_AVX512 void rows_avx512(const uint8_t* in, size_t in_stride, int rows, const Taps& t, int x0, int x1,
                              uint8_t* out, size_t out_stride) {
  static_assert(C == 3 || C == 4, "vector rows: RGB or RGBA");
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + size_t(y) * in_stride;
    uint8_t* dst = out + size_t(y) * out_stride;
    for (int x = x0; x < x1; ++x) {
      uint8_t* d = dst + size_t(x - x0) * C;
      if (!row_loads_fit(t, x, C, 4, 16)) {
        pixel_scalar(src, C, t, x, d);
        continue;
      }
      const uint8_t* s = src + size_t(t.first[size_t(x)]) * C;
      const int32_t* w = &t.w4[size_t(x) * t.kpad * 4];
      const int n = t.count[size_t(x)];
      __m512i acc = _mm512_setzero_si512();
      for (int j = 0; j < n; j += 4) {  // taps j..j+3 (zero weights past count)
        __m128i px = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j * C));
        if (C == 3) px = rgb_to_rgb0(px);
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(px), _mm512_loadu_si512(w + j * 4)));
      }
      const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
      const __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)),
                                        _mm_set1_epi32(kHalf));
      const uint32_t px = pack4(sum);
      if (C == 4 || x + 1 < x1) std::memcpy(d, &px, 4);
      else std::memcpy(d, &px, 3);
    }
  }
}

MMKIT_AVX512 inline __m128i clip_to_bytes512(__m512i acc) {
  return _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(acc, kPrecisionBits), _mm512_setzero_si512()));
}

MMKIT_AVX512 void cols_avx512(const uint8_t* in, size_t in_stride, int row0, const Taps& t, int y0, int y1,
                              size_t bytes, uint8_t* out, size_t out_stride) {
  for (int y = y0; y < y1; ++y) {
    const int32_t* k = &t.w[size_t(y) * t.ksize];
    const int n = t.count[size_t(y)];
    const uint8_t* base = in + size_t(t.first[size_t(y)] - row0) * in_stride;
    uint8_t* dst = out + size_t(y - y0) * out_stride;
    size_t i = 0;
    for (; i + 64 <= bytes; i += 64) {  // 4 independent accumulators of 16 bytes
      __m512i a0 = _mm512_set1_epi32(kHalf), a1 = a0, a2 = a0, a3 = a0;
      for (int j = 0; j < n; ++j) {
        const uint8_t* s = base + size_t(j) * in_stride + i;
        const __m512i kj = _mm512_set1_epi32(k[j]);
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s))), kj));
        a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 16))), kj));
        a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 32))), kj));
        a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 48))), kj));
      }
      _mm_storeu_si128((__m128i*)(dst + i), clip_to_bytes512(a0));
      _mm_storeu_si128((__m128i*)(dst + i + 16), clip_to_bytes512(a1));
      _mm_storeu_si128((__m128i*)(dst + i + 32), clip_to_bytes512(a2));
      _mm_storeu_si128((__m128i*)(dst + i + 48), clip_to_bytes512(a3));
    }
    for (; i < bytes; i += 16) {  // masked: loads and stores never touch bytes past the row
      const size_t m = std::min<size_t>(16, bytes - i);
      const __mmask16 mask = __mmask16((1u << m) - 1);
      __m512i a = _mm512_set1_epi32(kHalf);
      for (int j = 0; j < n; ++j) {
        const __m128i px = _mm_maskz_loadu_epi8(mask, base + size_t(j) * in_stride + i);
        a = _mm512_add_epi32(a, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(px), _mm512_set1_epi32(k[j])));
      }
      _mm_mask_storeu_epi8(dst + i, mask, clip_to_bytes512(a));
    }
  }
}

ResampleIsa detect_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2"))
    return ResampleIsa::avx512;
  if (__builtin_cpu_supports("avx2")) return ResampleIsa::avx2;
  return ResampleIsa::scalar;
}

}  // namespace
#else
namespace {
ResampleIsa detect_isa() { return ResampleIsa::scalar; }
}  // namespace
#endif

namespace {
std::atomic<int> g_isa{-1};
}

const char* resample_isa_name(ResampleIsa isa) {
  switch (isa) {
    case ResampleIsa::scalar: return "scalar";
    case ResampleIsa::avx2: return "avx2";
    case ResampleIsa::avx512: return "avx512";
  }
  return "?";
}

ResampleIsa resample_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = int(detect_isa());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return ResampleIsa(v);
}

void set_resample_isa(ResampleIsa isa) { g_isa.store(std::min(int(isa), int(detect_isa()))); }

void resample_rows(const uint8_t* in, size_t in_stride, int C, int rows, const Taps& t, int x0, int x1,
                   uint8_t* out, size_t out_stride) {
  MMKIT_CHECK(0 <= x0 && x0 <= x1 && x1 <= t.out_size, "resample_rows: columns ", x0, "..", x1, " outside 0..",
              t.out_size);
#ifdef MMKIT_RESAMPLE_X86
  if (C == 3 || C == 4) switch (resample_isa()) {
      case ResampleIsa::avx512:
        return C == 3 ? rows_avx512<3>(in, in_stride, rows, t, x0, x1, out, out_stride)
                      : rows_avx512<4>(in, in_stride, rows, t, x0, x1, out, out_stride);
      case ResampleIsa::avx2:
        return C == 3 ? rows_avx2<3>(in, in_stride, rows, t, x0, x1, out, out_stride)
                      : rows_avx2<4>(in, in_stride, rows, t, x0, x1, out, out_stride);
      case ResampleIsa::scalar: break;
    }
#endif
  resample_rows_scalar(in, in_stride, C, rows, t, x0, x1, out, out_stride);
}

void resample_cols(const uint8_t* in, size_t in_stride, int row0, const Taps& t, int y0, int y1, size_t bytes,
                   uint8_t* out, size_t out_stride) {
  MMKIT_CHECK(0 <= y0 && y0 <= y1 && y1 <= t.out_size, "resample_cols: rows ", y0, "..", y1, " outside 0..",
              t.out_size);
  MMKIT_CHECK(y0 == y1 || row0 <= t.first[size_t(y0)], "resample_cols: input starts at row ", row0,
              " but output row ", y0, " reads row ", t.first[size_t(y0)]);
#ifdef MMKIT_RESAMPLE_X86
  switch (resample_isa()) {
    case ResampleIsa::avx512: return cols_avx512(in, in_stride, row0, t, y0, y1, bytes, out, out_stride);
    case ResampleIsa::avx2: return cols_avx2(in, in_stride, row0, t, y0, y1, bytes, out, out_stride);
    case ResampleIsa::scalar: break;
  }
#endif
  resample_cols_scalar(in, in_stride, row0, t, y0, y1, bytes, out, out_stride);
}

}  // namespace mmkit
