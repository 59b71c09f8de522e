// Fuzz target: image decoding (PNG via libpng, JPEG via libjpeg, with the decompression-bomb
// limits) and model preprocessing (image/preprocess.h presets: resize, center crop, normalise).
// Input: byte 0 picks preset and size, the rest is the file's bytes.
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "mmkit/image/image.h"
#include "mmkit/image/preprocess.h"

using namespace mmkit;

// Small enough that one execution stays in milliseconds; the limit logic is the same at any value.
constexpr int64_t kMaxPixels = 1 << 20;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const int kSizes[4] = {16, 32, 64, 224};
  const char* preset = (data[0] & 1) ? "imagenet" : "clip";
  const int side = kSizes[(data[0] >> 1) & 3];
  Image im;
  if (!fuzz::accepts([&] { im = decode_image_memory(data + 1, size - 1, "fuzz.img", kMaxPixels); })) return 0;
  if (im.width <= 0 || im.height <= 0 || int64_t(im.width) * im.height > kMaxPixels ||
      (im.channels != 1 && im.channels != 3 && im.channels != 4) ||
      im.pixels.size() != size_t(im.width) * im.height * im.channels)
    fuzz::violated("decoded image has an inconsistent shape");

  // What every image command does next.
  PreprocessConfig cfg = preprocess_preset(preset, side);
  std::vector<float> x(size_t(3) * cfg.crop * cfg.crop);
  fuzz::accepts([&] { preprocess_image(im, cfg, x.data()); });

  // Our PNG writer's output decodes to the same pixels.
  if (int64_t(im.width) * im.height <= 65536) {
    std::vector<uint8_t> png = encode_png(im);
    Image back = decode_image_memory(png.data(), png.size(), "roundtrip.png", kMaxPixels);
    if (back.width != im.width || back.height != im.height || back.channels != im.channels ||
        back.pixels != im.pixels)
      fuzz::violated("PNG encode/decode round trip");
  }
  return 0;
}
