#include "mmkit/core/arena.h"

#include <algorithm>
#include <cstring>

namespace mmkit {

Arena::Arena(size_t initial_bytes) { add_chunk(initial_bytes); }

void Arena::add_chunk(size_t min_bytes) {
  size_t size = std::max(min_bytes, chunks_.empty() ? size_t(0) : chunks_.back().size * 2);
  chunks_.push_back({aligned_buffer(size), size});
  ++heap_allocs_;
  offset_ = 0;
}

void* Arena::alloc(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (offset_ + bytes > chunks_.back().size) {
    used_total_ += offset_;
    add_chunk(bytes);
  }
  void* p = static_cast<char*>(chunks_.back().mem.get()) + offset_;
  offset_ += bytes;
  peak_ = std::max(peak_, used_total_ + offset_);
  return p;
}

Tensor Arena::tensor(const Shape& s, DType t) {
  for (int i = 0; i < s.n; ++i) MMKIT_CHECK(s.d[i] >= 0, "negative dimension in shape ", s.str());
  return Tensor::view(alloc(size_t(s.numel()) * dtype_size(t)), s, t);
}

Tensor Arena::zeros(const Shape& s, DType t) {
  Tensor x = tensor(s, t);
  std::memset(x.raw(), 0, x.nbytes());
  return x;
}

size_t Arena::capacity() const {
  size_t c = 0;
  for (auto& ch : chunks_) c += ch.size;
  return c;
}

void Arena::reset() {
  if (chunks_.size() > 1) {
    // Fold into one block big enough for the peak seen so far (+1/8 slack).
    size_t need = peak_ + peak_ / 8;
    chunks_.clear();
    add_chunk(need);
  }
  offset_ = 0;
  used_total_ = 0;
}

}  // namespace mmkit
