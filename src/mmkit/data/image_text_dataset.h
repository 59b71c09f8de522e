// Image-caption collections for CLIP training and retrieval evaluation, and a
// loader that decodes + preprocesses batches on worker threads while the
// previous batch trains.
//
// Files (image paths relative to the file's own directory unless absolute):
//   JSONL: one object per line, {"image": "a.jpg", "caption": "a cat"}
//          ("captions": [...] also accepted: one pair per caption)
//   CSV:   header line with columns "image" and "caption" (any order, more
//          columns ignored); RFC 4180 quoting ("..." with "" for a quote)
//
//   auto pairs = mmkit::data::read_image_text_file("train.jsonl");
//   mmkit::data::ImageBatchLoader loader(paths, mmkit::preprocess_preset("clip", 224), 2);
//   loader.start(indices, seed);  ...  loader.finish(x_ptr);       // [n, 3, R, R]
#pragma once
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "mmkit/image/preprocess.h"

namespace mmkit::data {

struct ImageTextPair {
  std::string image;    // resolved path
  std::string caption;  // UTF-8
  int64_t image_id = 0; // pairs sharing an image file share the id (retrieval ground truth)
};

// Throws mmkit::Error naming file:line for malformed lines, missing fields,
// invalid UTF-8 or an empty collection. Does not open the images.
std::vector<ImageTextPair> read_image_text_file(const std::string& path);
// The same from memory: `text` is the file's content; `path` picks the format
// (".csv" suffix: CSV, else JSONL), names it in errors and resolves relative
// image paths (fuzz/fuzz_jsonl.cpp).
std::vector<ImageTextPair> parse_image_text(const std::string& text, const std::string& path);

// Decodes images[idx] with `workers` threads, preprocesses (resize, center
// crop, normalise), optionally flips horizontally (per image, from the seed),
// and writes [n, 3, crop, crop] floats. start() returns at once; finish()
// waits and copies, rethrowing the first error (naming the image file).
class ImageBatchLoader {
 public:
  ImageBatchLoader(std::vector<std::string> paths, PreprocessConfig pre, int workers, bool flip = false);
  ~ImageBatchLoader();
  // row0: the position of idx[0] in the global batch (data-parallel ranks
  // load slices), so each image's flip depends on (seed, global position).
  void start(const std::vector<int64_t>& idx, uint64_t seed, int64_t row0 = 0);
  void finish(float* out);
  int64_t floats_per_image() const { return 3 * int64_t(pre_.crop) * pre_.crop; }

 private:
  std::vector<std::string> paths_;
  PreprocessConfig pre_;
  int workers_;
  bool flip_;
  std::vector<float> buf_;
  std::future<void> pending_;
};

}  // namespace mmkit::data
