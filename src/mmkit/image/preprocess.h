// Model input preprocessing that reproduces the Python pipelines exactly:
// torchvision 0.14 transforms on PIL 9.4 images, then ToTensor + Normalize.
//
//   mmkit::PreprocessConfig cfg = mmkit::preprocess_preset("clip", 224);
//   std::vector<float> x(3 * cfg.crop * cfg.crop);                  // [3, crop, crop]
//   mmkit::preprocess_image(mmkit::decode_image_file("cat.jpg"), cfg, x.data());
//
// Pipeline (T = torchvision.transforms):
//   1. if rgb_before_resize: convert to RGB (gray replicated, alpha dropped)
//   2. T.Resize(size, filter): shorter side -> size, longer side
//      int(size * long / short) (truncated); skipped if the size is unchanged.
//      RGBA is resized with premultiplied alpha, as PIL does (see resample.h).
//   3. T.CenterCrop(crop): zero padding if the image is smaller, then offsets
//      top = int(round((h - crop) / 2.0)) with Python's round (half to even).
//   4. convert("RGB"): gray replicated, alpha dropped without compositing.
//   5. ToTensor + Normalize in float32: (float(v) / 255 - mean[c]) / std[c],
//      the same IEEE operations as torch, so the tensor is bit-identical.
// Presets:
//   "clip"     OpenAI CLIP's _transform(n): Resize(n, BICUBIC), CenterCrop(n),
//              convert("RGB") after the crop, CLIP mean/std.
//   "siglip"   transformers' SiglipImageProcessor (do_convert_rgb): convert("RGB"), resize to
//              n x n (no aspect ratio kept, no crop) BICUBIC, rescale as image_transforms.rescale
//              does (float64 v * (1/255), then float32), normalize (x - 0.5) / 0.5 in float32.
//   "imagenet" torchvision's classification eval: images are loaded with
//              convert("RGB") (ImageFolder's loader), Resize(round(n * 256 / 224),
//              BILINEAR), CenterCrop(n), ImageNet mean/std; n = 224 gives 256/224.
// Not covered: PIL "P" (palette) images, which PIL resizes with NEAREST — the
// decoder already expands palettes to RGB(A), so those are filtered here.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/image/resample.h"

namespace mmkit {

struct PreprocessConfig {
  std::string name;                // preset name, for messages and model configs
  int size = 224;                  // shorter side after the resize
  int crop = 224;                  // side of the square center crop (= model input resolution)
  Filter filter = Filter::bicubic;
  std::array<float, 3> mean{};     // per RGB channel, applied after scaling to [0, 1]
  std::array<float, 3> std{};
  bool rgb_before_resize = false;  // true: drop alpha before resizing (no premultiplied resize)
  bool square_resize = false;      // true: resize straight to crop x crop (no shorter-side resize, no crop)
  bool rescale_f64 = false;        // true: float(double(v) * (1.0 / 255)) (transformers); else v / 255.f (torch)
};

// "clip", "siglip" or "imagenet" (see above) for a square model input of image_size
// pixels; throws naming the known presets otherwise.
PreprocessConfig preprocess_preset(const std::string& name, int image_size = 224);

// Most pixels the shorter-side resize may produce; more elongated images are refused (2^24).
constexpr int64_t kMaxResizedPixels = int64_t(1) << 24;

// torchvision Resize(int size) output size for a w x h image: {new_w, new_h}. Throws if the result
// would exceed kMaxResizedPixels (e.g. a 1x4464 image at size 224).
std::array<int, 2> shorter_side_resize_size(int w, int h, int size);

// torchvision CenterCrop((crop_h, crop_w)) on an 8-bit image (any channels):
// pads with zeros when the image is smaller, then cuts at Python-rounded offsets.
Image center_crop(const Image& img, int crop_w, int crop_h);

// Steps 1-4: the cropped RGB image, [crop, crop, 3] uint8.
Image preprocess_rgb(const Image& img, const PreprocessConfig& cfg);
// The same bytes written to out (crop * crop * 3). Gray and RGB images (and RGBA when
// rgb_before_resize) take the fast path: only the cropped window of the resize is computed, with
// the vectorised kernels, into per-thread buffers (no allocation per image); RGBA resized with
// premultiplied alpha goes through whole-image steps.
void preprocess_rgb_into(const Image& img, const PreprocessConfig& cfg, uint8_t* out);
// Same pixels as a flat HWC vector (crop * crop * 3 bytes), for byte-exact tests.
std::vector<uint8_t> preprocess_to_u8(const Image& img, const PreprocessConfig& cfg);

// Steps 1-5: writes 3 * crop * crop floats, CHW.
void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out_chw);

// Step 5 alone: [h, w, 3] uint8 RGB -> [3, h, w] float.
void normalize_to_chw(const Image& rgb, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                      float* out_chw, bool rescale_f64 = false);
// The same on raw [pixels, 3] bytes.
void normalize_to_chw(const uint8_t* rgb, int64_t pixels, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out_chw, bool rescale_f64 = false);

}  // namespace mmkit
