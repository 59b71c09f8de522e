#include "mmkit/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace mmkit {

Shape::Shape(std::initializer_list<int64_t> dims) {
  MMKIT_CHECK(dims.size() <= kMaxDims, "tensor rank ", dims.size(), " exceeds ", kMaxDims);
  for (int64_t v : dims) d[n++] = v;
}

Shape::Shape(const std::vector<int64_t>& dims) {
  MMKIT_CHECK(dims.size() <= kMaxDims, "tensor rank ", dims.size(), " exceeds ", kMaxDims);
  for (int64_t v : dims) d[n++] = v;
}

int64_t Shape::numel() const {
  int64_t p = 1;
  for (int i = 0; i < n; ++i) p *= d[i];
  return p;
}

bool Shape::operator==(const Shape& o) const {
  if (n != o.n) return false;
  for (int i = 0; i < n; ++i)
    if (d[i] != o.d[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < n; ++i) os << (i ? ", " : "") << d[i];
  os << "]";
  return os.str();
}

std::shared_ptr<void> aligned_buffer(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("out of memory allocating ", bytes, " bytes");
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Tensor Tensor::empty(const Shape& s, DType t) {
  for (int i = 0; i < s.n; ++i) MMKIT_CHECK(s.d[i] >= 0, "negative dimension in shape ", s.str());
  Tensor x;
  x.shape_ = s;
  x.dtype_ = t;
  x.owner_ = aligned_buffer(size_t(s.numel()) * dtype_size(t));
  x.data_ = x.owner_.get();
  return x;
}

Tensor Tensor::zeros(const Shape& s, DType t) {
  Tensor x = empty(s, t);
  std::memset(x.data_, 0, x.nbytes());
  return x;
}

Tensor Tensor::from_vector(const Shape& s, const std::vector<float>& v) {
  MMKIT_CHECK(int64_t(v.size()) == s.numel(), "from_vector: ", v.size(), " values for shape ", s.str());
  Tensor x = empty(s);
  std::memcpy(x.data_, v.data(), v.size() * sizeof(float));
  return x;
}

Tensor Tensor::view(void* data, const Shape& s, DType t, std::shared_ptr<void> owner) {
  Tensor x;
  x.data_ = data;
  x.shape_ = s;
  x.dtype_ = t;
  x.owner_ = std::move(owner);
  return x;
}

Tensor Tensor::reshape(const Shape& s) const {
  MMKIT_CHECK(s.numel() == numel(), "reshape ", shape_.str(), " -> ", s.str(), ": element count differs");
  Tensor x = *this;
  x.shape_ = s;
  return x;
}

Tensor Tensor::clone() const {
  Tensor x = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(x.data_, data_, nbytes());
  return x;
}

void Tensor::fill(float v) const {
  float* p = f32();
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = v;
}

void Tensor::zero() const {
  if (nbytes()) std::memset(data_, 0, nbytes());
}

std::vector<float> Tensor::to_vector() const {
  const float* p = f32();
  return std::vector<float>(p, p + numel());
}

}  // namespace mmkit
