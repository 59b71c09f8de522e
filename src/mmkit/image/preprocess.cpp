#include "mmkit/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit {

PreprocessConfig preprocess_preset(const std::string& name, int image_size) {
  if (image_size <= 0 || image_size > 16384)
    fail("preprocess_preset '", name, "': image_size must be in 1..16384, got ", image_size);
  PreprocessConfig c;
  c.name = name;
  c.crop = image_size;
  // Constants go through double then float, as torch.as_tensor(list, dtype=float32) does.
  if (name == "clip") {
    c.size = image_size;
    c.filter = Filter::bicubic;
    c.mean = {float(0.48145466), float(0.4578275), float(0.40821073)};
    c.std = {float(0.26862954), float(0.26130258), float(0.27577711)};
    c.rgb_before_resize = false;
  } else if (name == "siglip") {
    c.size = image_size;
    c.filter = Filter::bicubic;
    c.mean = {0.5f, 0.5f, 0.5f};
    c.std = {0.5f, 0.5f, 0.5f};
    c.rgb_before_resize = true;
    c.square_resize = true;
    c.rescale_f64 = true;
  } else if (name == "imagenet") {
    // 256/224 = 8/7 never lands on .5, so rounding mode does not matter.
    c.size = int(std::lround(image_size * 256.0 / 224.0));
    c.filter = Filter::bilinear;
    c.mean = {float(0.485), float(0.456), float(0.406)};
    c.std = {float(0.229), float(0.224), float(0.225)};
    c.rgb_before_resize = true;
  } else {
    fail("unknown preprocess preset '", name, "' (expected clip, siglip or imagenet)");
  }
  return c;
}

std::array<int, 2> shorter_side_resize_size(int w, int h, int size) {
  if (w <= 0 || h <= 0 || size <= 0)
    fail("shorter_side_resize_size: sizes must be positive, got image ", w, "x", h, ", size ", size);
  const int shorter = std::min(w, h), longer = std::max(w, h);
  // Python: int(size * long / short) — exact integer product, true division in double, truncation.
  const double l = double(int64_t(size) * longer) / shorter;
  // A very elongated image is a resize bomb: a 103-byte 1x4464 PNG at size 224 becomes 224x999936
  // (690 MB, seconds of work) before the crop throws almost all of it away. The budget allows
  // aspect ratios up to ~1:330 at 224 and keeps the intermediate image under 50 MB of RGB.
  if (l * size > double(kMaxResizedPixels))
    fail("image ", w, "x", h, " is too elongated: resizing its shorter side to ", size, " gives ",
         (w <= h ? int64_t(size) : int64_t(l)), "x", (w <= h ? int64_t(l) : int64_t(size)), " = ",
         int64_t(l * size), " pixels (limit ", kMaxResizedPixels, ")");
  const int new_long = int(l);
  return w <= h ? std::array<int, 2>{size, new_long} : std::array<int, 2>{new_long, size};
}

namespace {

// Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour.
int round_half_even_div2(int d) {
  const int k = d / 2;
  return (d % 2 == 0 || k % 2 == 0) ? k : k + 1;
}

}  // namespace

Image center_crop(const Image& img, int crop_w, int crop_h) {
  if (img.width <= 0 || img.height <= 0 || img.channels <= 0 ||
      img.pixels.size() != size_t(img.width) * img.height * img.channels)
    fail("center_crop: invalid input image ", img.width, "x", img.height, "x", img.channels);
  if (crop_w <= 0 || crop_h <= 0) fail("center_crop: crop size must be positive, got ", crop_w, "x", crop_h);
  // torchvision first pads a too-small image with zeros (left/top get the floor
  // of half the deficit), after which the offsets below are 0 on that axis.
  const int pad_l = crop_w > img.width ? (crop_w - img.width) / 2 : 0;
  const int pad_t = crop_h > img.height ? (crop_h - img.height) / 2 : 0;
  const int pw = std::max(img.width, crop_w), ph = std::max(img.height, crop_h);
  const int left = round_half_even_div2(pw - crop_w) - pad_l;  // in source coordinates
  const int top = round_half_even_div2(ph - crop_h) - pad_t;
  const int c = img.channels;
  Image out(crop_w, crop_h, c);  // zero-filled
  for (int y = 0; y < crop_h; ++y) {
    const int sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    const int x0 = std::max(0, -left), x1 = std::min(crop_w, img.width - left);
    if (x1 > x0)
      std::memcpy(out.row(y) + size_t(x0) * c, img.row(sy) + size_t(left + x0) * c, size_t(x1 - x0) * c);
  }
  return out;
}

namespace {

void check_preprocess_args(const Image& img, const PreprocessConfig& cfg) {
  if (cfg.size <= 0 || cfg.crop <= 0)
    fail("preprocess '", cfg.name, "': size and crop must be positive, got size ", cfg.size, ", crop ", cfg.crop);
  if (img.channels != 1 && img.channels != 3 && img.channels != 4)
    fail("preprocess '", cfg.name, "': expected a gray, RGB or RGBA image, got ", img.channels, " channels");
  if (img.width <= 0 || img.height <= 0 || img.pixels.size() != size_t(img.width) * img.height * img.channels)
    fail("preprocess '", cfg.name, "': invalid image ", img.width, "x", img.height, "x", img.channels, " with ",
         img.pixels.size(), " bytes");
}

// Steps 1-4 composed from whole-image operations: the path for RGBA resized with premultiplied
// alpha (the rare case; it allocates).
Image preprocess_rgb_composed(const Image& img, const PreprocessConfig& cfg) {
  Image im = cfg.rgb_before_resize ? to_rgb(img) : img;
  if (cfg.square_resize) {
    if (im.width != cfg.crop || im.height != cfg.crop) im = resize_pil(im, cfg.crop, cfg.crop, cfg.filter);
    return to_rgb(im);
  }
  const auto [w, h] = shorter_side_resize_size(im.width, im.height, cfg.size);
  if (w != im.width || h != im.height) im = resize_pil(im, w, h, cfg.filter);
  im = center_crop(im, cfg.crop, cfg.crop);
  return to_rgb(im);
}

// Gray or RGB pixels (C = 1 or 3) -> the [crop, crop, C] window of resize + center crop, computed
// directly (resize_region), zero where the crop pads. Same bytes as resize_pil + center_crop.
void resize_crop_window(const uint8_t* px, int in_w, int in_h, int C, const PreprocessConfig& cfg, uint8_t* out) {
  const int crop = cfg.crop;
  int w = crop, h = crop;
  if (!cfg.square_resize) {
    const auto wh = shorter_side_resize_size(in_w, in_h, cfg.size);
    w = wh[0];
    h = wh[1];
  }
  // center_crop's offsets, in resized-image coordinates (negative: padding).
  const int pad_l = crop > w ? (crop - w) / 2 : 0, pad_t = crop > h ? (crop - h) / 2 : 0;
  const int left = round_half_even_div2(std::max(w, crop) - crop) - pad_l;
  const int top = round_half_even_div2(std::max(h, crop) - crop) - pad_t;
  const int x0 = std::max(0, left), x1 = std::min(w, left + crop);
  const int y0 = std::max(0, top), y1 = std::min(h, top + crop);
  const size_t stride = size_t(crop) * C;
  if (x0 > left || y0 > top || x1 < left + crop || y1 < top + crop) std::memset(out, 0, stride * crop);
  if (x1 <= x0 || y1 <= y0) return;
  uint8_t* dst = out + size_t(y0 - top) * stride + size_t(x0 - left) * C;
  if (w == in_w && h == in_h) {
    for (int y = y0; y < y1; ++y)
      std::memcpy(dst + size_t(y - y0) * stride, px + (size_t(y) * in_w + x0) * C, size_t(x1 - x0) * C);
    return;
  }
  if (cfg.filter == Filter::nearest) {  // not used by the presets; keep it exact the simple way
    Image src(in_w, in_h, C);
    std::memcpy(src.pixels.data(), px, src.pixels.size());
    const Image r = resize_pil(src, w, h, cfg.filter);
    for (int y = y0; y < y1; ++y)
      std::memcpy(dst + size_t(y - y0) * stride, r.row(y) + size_t(x0) * C, size_t(x1 - x0) * C);
    return;
  }
  resize_region(px, in_w, in_h, C, w, h, cfg.filter, x0, x1, y0, y1, dst, stride);
}

}  // namespace

void preprocess_rgb_into(const Image& img, const PreprocessConfig& cfg, uint8_t* out) {
  check_preprocess_args(img, cfg);
  const int crop = cfg.crop;
  const size_t n = size_t(crop) * crop;
  if (img.channels == 3) return resize_crop_window(img.pixels.data(), img.width, img.height, 3, cfg, out);
  if (img.channels == 1) {
    // Channels are filtered independently, so resizing gray and then replicating it gives the
    // bytes of replicating first (rgb_before_resize) or last.
    thread_local std::vector<uint8_t> gray;
    if (gray.size() < n) gray.resize(n);
    resize_crop_window(img.pixels.data(), img.width, img.height, 1, cfg, gray.data());
    for (size_t i = 0; i < n; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = gray[i];
    return;
  }
  if (cfg.rgb_before_resize) {  // RGBA: alpha dropped first, then the RGB path
    const Image rgb = to_rgb(img);
    return resize_crop_window(rgb.pixels.data(), rgb.width, rgb.height, 3, cfg, out);
  }
  const Image r = preprocess_rgb_composed(img, cfg);
  std::memcpy(out, r.pixels.data(), n * 3);
}

Image preprocess_rgb(const Image& img, const PreprocessConfig& cfg) {
  check_preprocess_args(img, cfg);
  Image out(cfg.crop, cfg.crop, 3);
  preprocess_rgb_into(img, cfg, out.pixels.data());
  return out;
}

std::vector<uint8_t> preprocess_to_u8(const Image& img, const PreprocessConfig& cfg) {
  return preprocess_rgb(img, cfg).pixels;
}

void normalize_to_chw(const uint8_t* rgb, int64_t pixels, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out_chw, bool rescale_f64) {
  for (int c = 0; c < 3; ++c)
    if (!(std[size_t(c)] != 0.0f)) fail("normalize_to_chw: std[", c, "] is ", std[size_t(c)]);
  // 256-entry table per channel; each entry is computed with torch's float32
  // operations (ToTensor: v / 255; Normalize: (x - mean) / std), so it is exact.
  float lut[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const float x = rescale_f64 ? float(double(v) * (1.0 / 255)) : float(v) / 255.0f;
      lut[c][v] = (x - mean[size_t(c)]) / std[size_t(c)];
    }
  const size_t n = size_t(pixels);
  const uint8_t* p = rgb;
  for (size_t i = 0; i < n; ++i, p += 3) {
    out_chw[i] = lut[0][p[0]];
    out_chw[n + i] = lut[1][p[1]];
    out_chw[2 * n + i] = lut[2][p[2]];
  }
}

void normalize_to_chw(const Image& rgb, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                      float* out_chw, bool rescale_f64) {
  if (rgb.channels != 3 || rgb.pixels.size() != size_t(rgb.width) * rgb.height * 3)
    fail("normalize_to_chw: expected an RGB image, got ", rgb.width, "x", rgb.height, "x", rgb.channels);
  normalize_to_chw(rgb.pixels.data(), int64_t(rgb.width) * rgb.height, mean, std, out_chw, rescale_f64);
}

void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out_chw) {
  check_preprocess_args(img, cfg);
  // The cropped RGB bytes go through a per-thread buffer: no allocation per image.
  thread_local std::vector<uint8_t> rgb;
  const size_t n = size_t(cfg.crop) * cfg.crop;
  if (rgb.size() < n * 3) rgb.resize(n * 3);
  preprocess_rgb_into(img, cfg, rgb.data());
  normalize_to_chw(rgb.data(), int64_t(n), cfg.mean, cfg.std, out_chw, cfg.rescale_f64);
}

}  // namespace mmkit
