#include "mmkit/image/to_tensor.h"

#include <cstddef>

namespace mmkit {

void pixels_to_chw(const uint8_t* hwc, int h, int w, int c, const std::vector<float>& mean,
                   const std::vector<float>& std, float* out) {
  for (int ch = 0; ch < c; ++ch) {
    float m = mean.empty() ? 0.5f : mean[std::size_t(ch)];
    float inv = 1.f / (std.empty() ? 0.5f : std[std::size_t(ch)]);
    float* o = out + int64_t(ch) * h * w;
    for (int64_t i = 0; i < int64_t(h) * w; ++i) o[i] = (hwc[i * c + ch] * (1.f / 255.f) - m) * inv;
  }
}

}  // namespace mmkit
