// Tensor: a typed, contiguous, row-major view of memory plus its shape.
//
// Storage comes from one of three places and the tensor does not care which:
//   owned  - heap buffer kept alive by `owner_` (parameters, optimizer state)
//   arena  - bump-allocated from an Arena for one step; `owner_` is empty and
//            the arena's reset() invalidates it (activations, gradients)
//   mapped - a view into an mmapped checkpoint; `owner_` keeps the mapping alive
// Tensors are cheap handles (copying one shares the data). Only contiguous
// layouts exist: ops that permute axes materialise the result, which keeps
// every kernel a simple loop over pointers.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "mmkit/core/dtype.h"
#include "mmkit/core/error.h"

namespace mmkit {

constexpr int kMaxDims = 6;

struct Shape {
  int64_t d[kMaxDims] = {0, 0, 0, 0, 0, 0};
  int n = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int64_t operator[](int i) const { return d[i < 0 ? i + n : i]; }
  int64_t& operator[](int i) { return d[i < 0 ? i + n : i]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(d, d + n); }
  std::string str() const;  // "[2, 3, 4]"
};

class Tensor {
 public:
  Tensor() = default;
  // Heap-allocated, 64-byte aligned. empty() leaves contents uninitialised.
  static Tensor empty(const Shape& s, DType t = DType::f32);
  static Tensor zeros(const Shape& s, DType t = DType::f32);
  static Tensor from_vector(const Shape& s, const std::vector<float>& v);
  // Wraps memory owned elsewhere; `owner` (may be empty) keeps it alive.
  static Tensor view(void* data, const Shape& s, DType t, std::shared_ptr<void> owner = {});

  bool defined() const { return data_ != nullptr; }
  void* raw() const { return data_; }
  float* f32() const {
    MMKIT_CHECK(dtype_ == DType::f32, "tensor is ", dtype_name(dtype_), ", expected F32");
    return static_cast<float*>(data_);
  }
  template <class T>
  T* ptr() const { return static_cast<T*>(data_); }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.n; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  // Same data, new shape (numel must match).
  Tensor reshape(const Shape& s) const;
  // Deep copy into a new heap tensor.
  Tensor clone() const;
  void fill(float v) const;
  void zero() const;
  std::vector<float> to_vector() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  Shape shape_;
  std::shared_ptr<void> owner_;
};

// 64-byte aligned heap memory (AVX-512 loads, no false sharing between rows).
std::shared_ptr<void> aligned_buffer(size_t bytes);

}  // namespace mmkit
