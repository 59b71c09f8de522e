// JPEG encoding (libjpeg): how the near-duplicate tests and benchmark make
// re-encoded copies of an image (bench/near_duplicate_set.h). Decoding is
// image.h's.
//
//   std::vector<uint8_t> jpg = mmkit::encode_jpeg(img, /*quality=*/75);
#pragma once
#include <cstdint>
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit {

// Baseline JPEG of an 8-bit gray or RGB image (RGBA: alpha dropped) with libjpeg's defaults at
// `quality` 1..100 (4:2:0 chroma subsampling). Throws mmkit::Error naming the problem.
std::vector<uint8_t> encode_jpeg(const Image& img, int quality);

}  // namespace mmkit
