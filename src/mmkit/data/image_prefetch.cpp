#include "mmkit/data/image_prefetch.h"

#include <algorithm>

#include "mmkit/core/error.h"
#include "mmkit/image/image.h"

namespace mmkit::data {

ImagePrefetcher::ImagePrefetcher(std::vector<std::string> files, PreprocessConfig pre, int batch, int decode_threads)
    : files_(std::move(files)), pre_(std::move(pre)), batch_(size_t(std::max(1, batch))),
      threads_(std::max(1, decode_threads)) {
  worker_ = std::thread([this] { run(); });
}

ImagePrefetcher::~ImagePrefetcher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void ImagePrefetcher::fill(ImageBatch& b, size_t first) {
  const size_t end = std::min(files_.size(), first + batch_), n = end - first;
  const size_t P = size_t(3) * pre_.crop * pre_.crop;
  b.first = first;
  b.end = end;
  b.pixels.resize(n * P);  // capacity is kept: no reallocation once a full batch was seen
  std::vector<int> w(n, 0), h(n, 0);
  std::vector<std::string> err(n);
  auto work = [&](size_t t) {
    for (size_t i = t; i < n; i += size_t(threads_)) {
      try {
        const Image im = decode_image_file(files_[first + i]);
        w[i] = im.width;
        h[i] = im.height;
        preprocess_image(im, pre_, b.pixels.data() + i * P);
      } catch (const std::exception& e) {
        err[i] = e.what();
        w[i] = 0;
      }
    }
  };
  std::vector<std::thread> extra;
  for (int t = 1; t < threads_; ++t) extra.emplace_back(work, size_t(t));
  work(0);
  for (auto& t : extra) t.join();
  // Compact: decoded images first, in order.
  b.index.clear();
  b.width.clear();
  b.height.clear();
  b.skipped.clear();
  for (size_t i = 0; i < n; ++i) {
    if (w[i] == 0) {
      b.skipped.emplace_back(first + i, err[i]);
      continue;
    }
    const size_t k = b.index.size();
    if (k != i) std::copy_n(b.pixels.data() + i * P, P, b.pixels.data() + k * P);
    b.index.push_back(first + i);
    b.width.push_back(w[i]);
    b.height.push_back(h[i]);
  }
  b.pixels.resize(b.index.size() * P);
}

void ImagePrefetcher::run() {
  ImageBatch work;
  for (size_t first = 0; first < files_.size(); first += batch_) {
    fill(work, first);
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return stop_ || !has_ready_; });
    if (stop_) return;
    std::swap(ready_, work);
    has_ready_ = true;
    if (has_spare_) {  // reuse the buffers the caller handed back
      std::swap(work, spare_);
      has_spare_ = false;
    }
    cv_.notify_all();
  }
}

bool ImagePrefetcher::next(ImageBatch& out) {
  std::unique_lock<std::mutex> l(mu_);
  if (handed_ >= files_.size()) return false;
  cv_.wait(l, [&] { return has_ready_; });
  std::swap(out, ready_);
  has_ready_ = false;
  handed_ = out.end;
  if (!has_spare_ && ready_.pixels.capacity() > 0) {  // out's previous buffers go back to the worker
    std::swap(spare_, ready_);
    has_spare_ = true;
  }
  cv_.notify_all();
  return true;
}

}  // namespace mmkit::data
