#include "mmkit/image/resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/image/resample_kernels.h"

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
  Image out(w, h, img.channels);
  resize_region(img.pixels.data(), img.width, img.height, img.channels, w, h, f, 0, w, 0, h, out.pixels.data(),
                size_t(w) * img.channels);
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

void resize_region(const uint8_t* in, int in_w, int in_h, int C, int w, int h, Filter f, int x0, int x1, int y0,
                   int y1, uint8_t* out, size_t out_stride) {
  MMKIT_CHECK(in_w > 0 && in_h > 0 && C >= 1 && C <= 4 && w > 0 && h > 0, "resize_region: bad sizes ", in_w, "x",
              in_h, "x", C, " -> ", w, "x", h);
  MMKIT_CHECK(0 <= x0 && x0 <= x1 && x1 <= w && 0 <= y0 && y0 <= y1 && y1 <= h, "resize_region: window [", x0,
              ",", x1, ")x[", y0, ",", y1, ") outside ", w, "x", h);
  MMKIT_CHECK(f != Filter::nearest, "resize_region: filtering resamples only");
  if (x0 == x1 || y0 == y1) return;
  const bool horiz = w != in_w, vert = h != in_h;
  const size_t in_stride = size_t(in_w) * C, win_bytes = size_t(x1 - x0) * C;
  // Only the input rows the vertical pass reads go through the horizontal pass.
  const Taps* tv = vert ? &cached_taps(in_h, h, f) : nullptr;
  const int r0 = vert ? tv->first[size_t(y0)] : y0;
  const int r1 = vert ? tv->first[size_t(y1 - 1)] + tv->count[size_t(y1 - 1)] : y1;
  const uint8_t* src = in + size_t(r0) * in_stride + size_t(x0) * C;
  size_t src_stride = in_stride;
  // The intermediate rows live in a per-thread buffer that only grows: no allocation per image.
  thread_local std::vector<uint8_t> mid;
  if (horiz) {
    const size_t need = size_t(r1 - r0) * win_bytes;
    if (mid.size() < need) mid.resize(need);
    resample_rows(in + size_t(r0) * in_stride, in_stride, C, r1 - r0, cached_taps(in_w, w, f), x0, x1, mid.data(),
                  win_bytes);
    src = mid.data();
    src_stride = win_bytes;
  }
  if (vert) {
    resample_cols(src, src_stride, r0, *tv, y0, y1, win_bytes, out, out_stride);
  } else {
    for (int y = y0; y < y1; ++y) std::memcpy(out + size_t(y - y0) * out_stride, src + size_t(y - r0) * src_stride, win_bytes);
  }
}

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
