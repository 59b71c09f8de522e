// PNG thumbnails of indexed images for `GET /v1/thumb/<id>`, made on first
// request and kept in an LRU bounded in bytes. Every request used to decode
// the original again (0.65 s and 147 MB for an indexed 49 Mpx PNG): now one
// decode per image while it stays cached, originals above `max_pixels` are
// refused (the same limit as uploaded images), and decodes run one at a time,
// so concurrent thumbnail requests cost one original's pixels at most.
//
//   ThumbnailCache thumbs(index, /*side=*/160, /*max_bytes=*/16 << 20, /*max_pixels=*/16'000'000);
//   std::shared_ptr<const std::string> png = thumbs.get(id);   // throws mmkit::Error naming the file
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "mmkit/image/image.h"
#include "mmkit/index/embedding_index.h"

namespace mmkit::index {

// `im` as a PNG with its longest side at most `side` (bilinear; smaller images keep their size):
// the cache's thumbnails, and what the live index stores for an image added over HTTP.
std::string thumbnail_png(Image im, int side);

class ThumbnailCache {
 public:
  ThumbnailCache(const EmbeddingIndex& index, int side, size_t max_bytes, int64_t max_pixels)
      : index_(index), side_(side), max_bytes_(max_bytes), max_pixels_(max_pixels) {}
  // The PNG of item `id` (0 <= id < index.size()), its longest side at most `side`.
  // Throws mmkit::Error (naming the file: for the log, not for clients) if the original
  // cannot be read or decoded, or is larger than max_pixels.
  std::shared_ptr<const std::string> get(int64_t id);
  size_t bytes() const;

 private:
  using Entry = std::pair<int64_t, std::shared_ptr<const std::string>>;
  const EmbeddingIndex& index_;
  int side_;
  size_t max_bytes_;
  int64_t max_pixels_;
  mutable std::mutex mu_;  // the LRU
  std::mutex decode_mu_;   // one original decoded at a time
  std::list<Entry> lru_;
  std::unordered_map<int64_t, std::list<Entry>::iterator> map_;
  size_t bytes_ = 0;
};

}  // namespace mmkit::index
