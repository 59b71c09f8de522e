// A VQA JSONL data set (data/vqa_jsonl.h) with its images decoded once and
// its questions grouped by image: what VQA training and evaluation read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/data/vqa_jsonl.h"
#include "mmkit/image/image.h"

namespace mmkit::data {

struct VqaDataset {
  std::vector<VqaExample> examples;
  std::vector<std::string> image_paths;
  std::vector<Image> images;                        // decoded, index-aligned with image_paths
  std::vector<std::vector<int64_t>> questions_of;  // per image: example indices
};

// limit_images > 0 keeps the questions of the first N distinct images.
VqaDataset load_vqa_dataset(const std::string& jsonl, int64_t limit_images = 0, bool show_progress = false);

// Moves the last `n` images of `d`, with all their questions, into the returned data set (a
// validation split carved from the training data: no image is in both). n is clamped to
// [0, images - 1] so `d` keeps at least one image.
VqaDataset split_off_images(VqaDataset& d, int64_t n);

}  // namespace mmkit::data
