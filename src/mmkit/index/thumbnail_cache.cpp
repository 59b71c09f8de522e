#include "mmkit/index/thumbnail_cache.h"

#include <algorithm>
#include <cmath>

#include "mmkit/image/image.h"

namespace mmkit::index {

std::string thumbnail_png(Image im, int side) {
  const int w = im.width, h = im.height;
  if (std::max(w, h) > side) {
    const double f = double(side) / std::max(w, h);
    im = resize_bilinear(im, std::max(1, int(std::lround(w * f))), std::max(1, int(std::lround(h * f))));
  }
  std::vector<uint8_t> png = encode_png(im);
  return std::string(png.begin(), png.end());
}

std::shared_ptr<const std::string> ThumbnailCache::get(int64_t id) {
  auto lookup = [&]() -> std::shared_ptr<const std::string> {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  };
  if (auto hit = lookup()) return hit;
  std::lock_guard<std::mutex> d(decode_mu_);
  if (auto hit = lookup()) return hit;  // made while this request waited for the decoder
  auto bytes = std::make_shared<const std::string>(thumbnail_png(decode_image_file(index_.item(id).path, max_pixels_), side_));
  std::lock_guard<std::mutex> l(mu_);
  lru_.emplace_front(id, bytes);
  map_[id] = lru_.begin();
  bytes_ += bytes->size();
  while (bytes_ > max_bytes_ && lru_.size() > 1) {
    bytes_ -= lru_.back().second->size();
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return bytes;
}

size_t ThumbnailCache::bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return bytes_;
}

}  // namespace mmkit::index
