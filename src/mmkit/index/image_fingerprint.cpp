#include "mmkit/index/image_fingerprint.h"

#include <algorithm>
#include <cmath>

#include "mmkit/core/error.h"

namespace mmkit::index {

std::vector<float> image_fingerprint(const Image& img) {
  MMKIT_CHECK(!img.empty() && img.width > 0 && img.height > 0, "image_fingerprint: empty image");
  const int S = kFingerprintSide, W = img.width, H = img.height, C = img.channels;
  // Box average: cell (cx, cy) takes the source pixels whose index maps into it (every pixel
  // counts once); an image smaller than S x S repeats its pixels.
  std::vector<double> sum(size_t(S * S * 3), 0.0), n(size_t(S * S), 0.0);
  const int sw = std::max(W, S), sh = std::max(H, S);  // upsampled by repetition when smaller
  for (int y = 0; y < sh; ++y) {
    const int sy = int(int64_t(y) * H / sh), cy = int(int64_t(y) * S / sh);
    const uint8_t* row = img.row(sy);
    for (int x = 0; x < sw; ++x) {
      const int sx = int(int64_t(x) * W / sw), cx = int(int64_t(x) * S / sw);
      const uint8_t* p = row + size_t(sx) * size_t(C);
      const size_t cell = size_t(cy * S + cx);
      for (int k = 0; k < 3; ++k) sum[cell * 3 + size_t(k)] += p[C >= 3 ? k : 0];  // gray: R = G = B; alpha ignored
      n[cell] += 1;
    }
  }
  std::vector<float> f(static_cast<size_t>(kFingerprintDim));
  for (int k = 0; k < 3; ++k) {
    double mean = 0;
    for (size_t cell = 0; cell < n.size(); ++cell) mean += sum[cell * 3 + size_t(k)] / n[cell];
    mean /= double(n.size());
    for (size_t cell = 0; cell < n.size(); ++cell) f[cell * 3 + size_t(k)] = float(sum[cell * 3 + size_t(k)] / n[cell] - mean);
  }
  double norm = 0;
  for (float v : f) norm += double(v) * v;
  // A flat image has no structure to compare: its fingerprint stays zero (cosine 0 with anything).
  if (norm > 1e-12)
    for (float& v : f) v = float(v / std::sqrt(norm));
  return f;
}

}  // namespace mmkit::index
