#include "mmkit/image/preprocess.h"

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

Image preprocess_rgb(const Image& img, const PreprocessConfig& cfg) {
  if (cfg.size <= 0 || cfg.crop <= 0)
    fail("preprocess '", cfg.name, "': size and crop must be positive, got size ", cfg.size, ", crop ", cfg.crop);
  if (img.channels != 1 && img.channels != 3 && img.channels != 4)
    fail("preprocess '", cfg.name, "': expected a gray, RGB or RGBA image, got ", img.channels, " channels");
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

std::vector<uint8_t> preprocess_to_u8(const Image& img, const PreprocessConfig& cfg) {
  return preprocess_rgb(img, cfg).pixels;
}

void normalize_to_chw(const Image& rgb, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                      float* out_chw, bool rescale_f64) {
  if (rgb.channels != 3 || rgb.pixels.size() != size_t(rgb.width) * rgb.height * 3)
    fail("normalize_to_chw: expected an RGB image, got ", rgb.width, "x", rgb.height, "x", rgb.channels);
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
  const size_t n = size_t(rgb.width) * rgb.height;
  const uint8_t* p = rgb.pixels.data();
  for (size_t i = 0; i < n; ++i, p += 3) {
    out_chw[i] = lut[0][p[0]];
    out_chw[n + i] = lut[1][p[1]];
    out_chw[2 * n + i] = lut[2][p[2]];
  }
}

void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out_chw) {
  normalize_to_chw(preprocess_rgb(img, cfg), cfg.mean, cfg.std, out_chw, cfg.rescale_f64);
}

}  // namespace mmkit
