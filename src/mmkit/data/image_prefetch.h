// Image files -> batches of model input, decoded and preprocessed on a worker thread while the
// caller runs the model on the previous batch: the one file pipeline of `mmkit embed --images`
// and `mmkit index build` (infer/embed_folder, index/embedding_index).
//
//   mmkit::data::ImagePrefetcher pf(files, mmkit::preprocess_preset("clip", 224), 32);
//   mmkit::data::ImageBatch b;
//   while (pf.next(b)) engine.encode_image(b.pixels.data(), b.count(), out);   // [n, 3, R, R]
//
// Overlap on two cores: the decoding thread (or threads) runs beside the OpenMP pool, which waits
// passively by default, so decode time fills the gaps the GEMMs leave and the rest of it shares
// the cores (docs/BENCHMARKS.md, "Image pipeline": the split was chosen by measuring it).
// Buffers: two batches are kept and swapped, so after the first two batches nothing is allocated
// per batch except what decoding an image allocates for its pixels. Files that do not decode are
// reported in `skipped`, never fatal.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mmkit/image/preprocess.h"

namespace mmkit::data {

struct ImageBatch {
  std::vector<float> pixels;        // [count(), 3, crop, crop]; capacity kept between batches
  std::vector<size_t> index;        // position in the file list of each decoded image, ascending
  std::vector<int> width, height;   // each decoded image's size before preprocessing
  std::vector<std::pair<size_t, std::string>> skipped;  // (position, reason) of files that failed
  size_t first = 0, end = 0;        // the batch covers files [first, end)
  int64_t count() const { return int64_t(index.size()); }
};

class ImagePrefetcher {
 public:
  // decode_threads >= 1 threads decode each batch (strided); batch >= 1 files per batch.
  ImagePrefetcher(std::vector<std::string> files, PreprocessConfig pre, int batch, int decode_threads = 1);
  ~ImagePrefetcher();
  ImagePrefetcher(const ImagePrefetcher&) = delete;
  ImagePrefetcher& operator=(const ImagePrefetcher&) = delete;

  // The next batch in file order (swapped into `out`; `out`'s old buffers are reused for a later
  // batch); false when every file has been handed out.
  bool next(ImageBatch& out);
  const std::vector<std::string>& files() const { return files_; }

 private:
  void run();                         // the worker: fills ready_ batch after batch
  void fill(ImageBatch& b, size_t first);

  std::vector<std::string> files_;
  PreprocessConfig pre_;
  size_t batch_;
  int threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  ImageBatch ready_;                  // produced, not yet taken (valid when has_ready_)
  bool has_ready_ = false, stop_ = false;
  ImageBatch spare_;                  // buffers handed back by next(), for the worker to refill
  bool has_spare_ = false;
  size_t handed_ = 0;                 // files handed to the caller so far
  std::thread worker_;
};

}  // namespace mmkit::data
