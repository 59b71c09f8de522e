// 8-bit HWC pixels -> normalised float CHW, the model input layout:
//   out[c, y, x] = (px[y, x, c] / 255 - mean[c]) / std[c]
#pragma once
#include <cstdint>
#include <vector>

namespace mmkit {

void pixels_to_chw(const uint8_t* hwc, int h, int w, int c, const std::vector<float>& mean,
                   const std::vector<float>& std, float* out);

}  // namespace mmkit
