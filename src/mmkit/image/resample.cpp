#include "mmkit/image/resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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

const char* filter_name(Filter f) {
  switch (f) {
    case Filter::nearest: return "nearest";
    case Filter::bilinear: return "bilinear";
    case Filter::bicubic: return "bicubic";
  }
  return "?";
}

Filter filter_from_name(const std::string& name) {
  if (name == "nearest") return Filter::nearest;
  if (name == "bilinear") return Filter::bilinear;
  if (name == "bicubic") return Filter::bicubic;
  fail("unknown resize filter '", name, "' (expected nearest, bilinear or bicubic)");
}

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22: headroom for 255 * (sum of |weights|) in int32

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

// Fixed-point taps for one axis: output sample i = sum_j in[first[i] + j] * w[i*ksize + j],
// j < count[i]. first/end are non-decreasing in i.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;  // [out]
  std::vector<int32_t> w;         // [out, ksize]
};

Taps make_taps(int in_size, int out_size, Filter f) {
  double (*kernel)(double) = f == Filter::bicubic ? cubic : triangle;
  const double kernel_support = f == Filter::bicubic ? 2.0 : 1.0;
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = kernel_support * filterscale;
  const double inv_fs = 1.0 / filterscale;  // multiplied, not divided: Pillow's rounding
  Taps t;
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
  return t;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Horizontal pass over `rows` rows of `in` starting at row0:
// in [*, in_w, C] -> out [rows, out_w, C]. C is a template argument so the
// per-channel accumulators live in registers.
template <int C>
void pass_rows(const uint8_t* in, int in_w, int row0, int rows, const Taps& t, int out_w, uint8_t* out) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + size_t(row0 + y) * in_w * C;
    uint8_t* dst = out + size_t(y) * out_w * C;
    for (int x = 0; x < out_w; ++x) {
      const int32_t* k = &t.w[size_t(x) * t.ksize];
      const uint8_t* s = src + size_t(t.first[size_t(x)]) * C;
      const int n = t.count[size_t(x)];
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
      for (int j = 0; j < n; ++j)
        for (int c = 0; c < C; ++c) acc[c] += int32_t(s[j * C + c]) * k[j];
      for (int c = 0; c < C; ++c) dst[size_t(x) * C + c] = clip8(acc[c]);
    }
  }
}

void pass_rows_any(const uint8_t* in, int in_w, int c, int row0, int rows, const Taps& t, int out_w,
                   uint8_t* out) {
  switch (c) {
    case 1: return pass_rows<1>(in, in_w, row0, rows, t, out_w, out);
    case 2: return pass_rows<2>(in, in_w, row0, rows, t, out_w, out);
    case 3: return pass_rows<3>(in, in_w, row0, rows, t, out_w, out);
    case 4: return pass_rows<4>(in, in_w, row0, rows, t, out_w, out);
  }
  fail("resize_pil: unsupported channel count ", c);
}

// Vertical pass: in [*, stride] whose row 0 is input row `row0` -> out [out_h, stride].
void pass_cols(const uint8_t* in, size_t stride, int row0, const Taps& t, int out_h, uint8_t* out) {
  std::vector<int32_t> acc(stride);
  for (int y = 0; y < out_h; ++y) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &t.w[size_t(y) * t.ksize];
    for (int j = 0; j < t.count[size_t(y)]; ++j) {
      const uint8_t* s = in + size_t(t.first[size_t(y)] - row0 + j) * stride;
      const int32_t kj = k[j];
      for (size_t i = 0; i < stride; ++i) acc[i] += int32_t(s[i]) * kj;
    }
    uint8_t* dst = out + size_t(y) * stride;
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
}

// Pillow's nearest resize is its affine scaler: the source position starts at
// scale/2 and is advanced by adding scale (accumulated rounding included), then
// truncated.
std::vector<int> nearest_index(int in_size, int out_size) {
  std::vector<int> idx(static_cast<size_t>(out_size));
  const double scale = double(in_size) / out_size;
  double pos = scale * 0.5;
  for (int i = 0; i < out_size; ++i, pos += scale) idx[size_t(i)] = std::min(int(pos), in_size - 1);
  return idx;
}

Image resize_nearest(const Image& img, int w, int h) {
  const int c = img.channels;
  const std::vector<int> xi = nearest_index(img.width, w), yi = nearest_index(img.height, h);
  Image out(w, h, c);
  for (int y = 0; y < h; ++y) {
    const uint8_t* src = img.row(yi[size_t(y)]);
    uint8_t* dst = out.row(y);
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) dst[size_t(x) * c + k] = src[size_t(xi[size_t(x)]) * c + k];
  }
  return out;
}

// Convolution resize treating every channel independently (Pillow's
// ImagingResample on an 8-bit image).
Image resize_straight(const Image& img, int w, int h, Filter f) {
  const int c = img.channels;
  const bool horiz = w != img.width, vert = h != img.height;
  // Only the input rows the vertical pass reads go through the horizontal pass.
  Taps tv;
  int row0 = 0, row1 = img.height;
  if (vert) {
    tv = make_taps(img.height, h, f);
    row0 = tv.first.front();
    row1 = tv.first.back() + tv.count.back();
  }
  Image mid;
  const uint8_t* src = img.pixels.data();
  int src_row0 = 0;
  if (horiz) {
    mid = Image(w, row1 - row0, c);
    pass_rows_any(img.pixels.data(), img.width, c, row0, row1 - row0, make_taps(img.width, w, f), w,
                  mid.pixels.data());
    if (!vert) return mid;
    src = mid.pixels.data();
    src_row0 = row0;
  }
  Image out(w, h, c);
  pass_cols(src, size_t(w) * c, src_row0, tv, h, out.pixels.data());
  return out;
}

// PIL "RGBA" -> "RGBa": colour * alpha / 255 with rounding (exact for all 65536 pairs).
void premultiply(Image& im) {
  const int c = im.channels;
  const size_t n = size_t(im.width) * im.height;
  uint8_t* p = im.pixels.data();
  for (size_t i = 0; i < n; ++i, p += c) {
    const uint32_t a = p[c - 1];
    for (int k = 0; k < c - 1; ++k) {
      const uint32_t t = p[k] * a + 128;
      p[k] = uint8_t(((t >> 8) + t) >> 8);
    }
  }
}

// PIL "RGBa" -> "RGBA": truncating division, clipped; alpha 0 and 255 pass through.
void unpremultiply(Image& im) {
  const int c = im.channels;
  const size_t n = size_t(im.width) * im.height;
  uint8_t* p = im.pixels.data();
  for (size_t i = 0; i < n; ++i, p += c) {
    const uint32_t a = p[c - 1];
    if (a == 0 || a == 255) continue;
    for (int k = 0; k < c - 1; ++k) p[k] = uint8_t(std::min<uint32_t>(255, 255u * p[k] / a));
  }
}

}  // namespace

Image resize_pil(const Image& img, int w, int h, Filter f) {
  if (img.width <= 0 || img.height <= 0 || img.channels < 1 || img.channels > 4 ||
      img.pixels.size() != size_t(img.width) * img.height * img.channels)
    fail("resize_pil: invalid input image ", img.width, "x", img.height, "x", img.channels, " with ",
         img.pixels.size(), " bytes (expected 1..4 channels, width*height*channels bytes)");
  if (w <= 0 || h <= 0) fail("resize_pil: target size must be positive, got ", w, "x", h);
  if (w == img.width && h == img.height) return img;
  if (f == Filter::nearest) return resize_nearest(img, w, h);
  if (img.channels == 2 || img.channels == 4) {
    Image pm = img;
    premultiply(pm);
    Image out = resize_straight(pm, w, h, f);
    unpremultiply(out);
    return out;
  }
  return resize_straight(img, w, h, f);
}

// Declared in image.h: bilinear with every channel resampled on its own
// (no alpha premultiplication), the same fixed-point kernels as resize_pil.
Image resize_bilinear(const Image& img, int w, int h) {
  if (img.width <= 0 || img.height <= 0 || img.channels <= 0 ||
      img.pixels.size() != size_t(img.width) * img.height * img.channels)
    fail("resize_bilinear: invalid input image ", img.width, "x", img.height, "x", img.channels, " with ",
         img.pixels.size(), " bytes");
  if (w <= 0 || h <= 0) fail("resize_bilinear: target size must be positive, got ", w, "x", h);
  if (w == img.width && h == img.height) return img;
  return resize_straight(img, w, h, Filter::bilinear);
}

}  // namespace mmkit
