// Arena: bump allocator for per-step memory (activations, gradients, scratch).
//
// The first training step discovers how much memory a step needs; reset()
// then folds all chunks into one block of at least that size, so from the
// second step on every allocation is a pointer bump and no malloc happens
// (the "planned memory" of DESIGN.md, planned by measuring one step instead of
// by a separate symbolic pass, which stays correct when shapes change).
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "mmkit/core/tensor.h"

namespace mmkit {

class Arena {
 public:
  explicit Arena(size_t initial_bytes = 1 << 20);
  void* alloc(size_t bytes);  // 64-byte aligned, uninitialised
  Tensor tensor(const Shape& s, DType t = DType::f32);
  Tensor zeros(const Shape& s, DType t = DType::f32);
  // Invalidates everything allocated so far.
  void reset();
  size_t used() const { return used_total_ + offset_; }
  size_t capacity() const;
  size_t peak() const { return peak_; }
  int chunk_count() const { return int(chunks_.size()); }
  // Counts chunk allocations (malloc calls) since construction; tests use it
  // to show that steady-state steps do not allocate.
  size_t heap_allocations() const { return heap_allocs_; }

 private:
  struct Chunk {
    std::shared_ptr<void> mem;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  size_t offset_ = 0;      // within chunks_.back()
  size_t used_total_ = 0;  // bytes in earlier chunks
  size_t peak_ = 0;
  size_t heap_allocs_ = 0;
  void add_chunk(size_t min_bytes);
};

}  // namespace mmkit
