// A model-independent fingerprint of an image for near-duplicate detection
// (LiveIndex::duplicate_groups): the image averaged down to 16 x 16 RGB cells,
// each channel's mean removed, L2-normalised, so the cosine of two fingerprints
// compares layout and colour and ignores size, JPEG noise and a uniform
// brightness shift. [kFingerprintDim] floats.
//
// Why not the CLIP embedding: with the project's models (randomly initialised
// tiny and small CLIPs; no trained CLIP is available offline here) embeddings of
// different generated images reach cosine 0.9996 while re-encoded copies go down
// to 0.9993 (docs/LIVE_INDEX.md, "Near-duplicates"), so no threshold separates them.
//
//   std::vector<float> f = mmkit::index::image_fingerprint(img);   // [768]
#pragma once
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit::index {

inline constexpr int kFingerprintSide = 16;
inline constexpr int kFingerprintDim = kFingerprintSide * kFingerprintSide * 3;

std::vector<float> image_fingerprint(const Image& img);

}  // namespace mmkit::index
