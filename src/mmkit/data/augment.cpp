#include "mmkit/data/augment.h"

#include <cstring>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"

namespace mmkit::data {

void shift_flip(const uint8_t* src, int h, int w, int dx, int dy, bool flip, uint8_t* dst) {
  for (int y = 0; y < h; ++y) {
    uint8_t* out = dst + int64_t(y) * w;
    int sy = y + dy;
    if (sy < 0 || sy >= h) {
      std::memset(out, 0, size_t(w));
      continue;
    }
    const uint8_t* in = src + int64_t(sy) * w;
    if (!flip) {
      // Output columns x with 0 <= x + dx < w come from src; the rest are 0.
      int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? w - dx : w;
      if (x1 <= x0) {
        std::memset(out, 0, size_t(w));
        continue;
      }
      std::memset(out, 0, size_t(x0));
      std::memcpy(out + x0, in + x0 + dx, size_t(x1 - x0));
      std::memset(out + x1, 0, size_t(w - x1));
    } else {
      for (int x = 0; x < w; ++x) {
        int sx = (w - 1 - x) + dx;
        out[x] = (sx >= 0 && sx < w) ? in[sx] : 0;
      }
    }
  }
}

void augment_random_crop_flip(const uint8_t* src, int h, int w, int pad, bool hflip, uint64_t rng_state,
                              uint8_t* dst) {
  MMKIT_CHECK(h > 0 && w > 0, "augment_random_crop_flip: bad image size ", h, "x", w);
  MMKIT_CHECK(pad >= 0, "augment_random_crop_flip: pad must be >= 0, got ", pad);
  Rng rng(rng_state);
  int dx = int(rng.randint(2 * pad + 1)) - pad;
  int dy = int(rng.randint(2 * pad + 1)) - pad;
  bool flip = hflip && (rng.next_u64() >> 63);
  shift_flip(src, h, w, dx, dy, flip, dst);
}

}  // namespace mmkit::data
