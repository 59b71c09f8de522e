// A caption data set with its images decoded once, converted to the model's
// channels and resized (bilinear) to one square size: what the captioner's
// training and evaluation read (data/caption_jsonl.h parses the file).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/data/caption_jsonl.h"

namespace mmkit::data {

struct CaptionData {
  std::vector<CaptionExample> examples;
  int64_t size = 0, channels = 3;
  std::vector<uint8_t> pixels;  // [n, size, size, channels]
  int64_t n() const { return int64_t(examples.size()); }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * size * size * channels; }
};

// image_size 0: the first image's width. limit > 0: first `limit` images.
CaptionData load_caption_data(const std::string& jsonl, int64_t image_size, int64_t channels, int64_t limit,
                              bool progress);

}  // namespace mmkit::data
