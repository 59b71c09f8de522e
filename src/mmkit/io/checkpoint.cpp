#include "mmkit/io/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

namespace mmkit::io {

std::string ProblemList::str() const {
  std::ostringstream o;
  o << "(" << n_ << " problem" << (n_ == 1 ? "" : "s") << "):";
  for (const auto& l : lines_) o << "\n  " << l;
  if (n_ > int64_t(lines_.size())) o << "\n  ... and " << n_ - int64_t(lines_.size()) << " more";
  return o.str();
}

static std::string shape_str(const std::vector<int64_t>& s) { return Shape(s).str(); }

static void check_names_and_shapes(const SafetensorsFile& file,
                                   const std::vector<Parameter*>& params, const LoadOptions& opt) {
  ProblemList problems;
  std::set<std::string> wanted;
  for (Parameter* p : params) {
    wanted.insert(p->name);
    const TensorView* t = file.find(p->name);
    if (!t) {
      problems.add("missing tensor '" + p->name + "' (expected " + p->value.shape().str() + ")");
      continue;
    }
    if (Shape(t->shape) != p->value.shape()) {
      problems.add("tensor '" + p->name + "': got " + shape_str(t->shape) + ", expected " + p->value.shape().str());
    }
  }
  if (!opt.allow_unexpected) {
    for (const TensorView& t : file.tensors()) {
      if (wanted.count(t.name)) continue;
      bool ignored = false;
      for (const auto& pre : opt.ignore_prefixes) ignored = ignored || t.name.rfind(pre, 0) == 0;
      if (ignored) continue;
      problems.add("unexpected tensor '" + t.name + "' " + shape_str(t.shape));
    }
  }
  if (problems.count()) fail("checkpoint ", file.path(), " does not match the model ", problems.str());
}

void load_parameters(const SafetensorsFile& file, const std::vector<Parameter*>& params,
                     const LoadOptions& opt) {
  check_names_and_shapes(file, params, opt);
  for (Parameter* p : params) {
    const TensorView& t = file.get(p->name);
    if (t.dtype == DType::f32) {
      std::memcpy(p->value.raw(), t.data, t.nbytes);
    } else {
      std::vector<float> v = to_f32(t);
      std::memcpy(p->value.raw(), v.data(), v.size() * 4);
    }
    require_finite(p->value.f32(), size_t(p->value.numel()), p->name, p->value.shape(), file.path());
  }
}

void require_finite(const float* data, size_t n, const std::string& tensor_name, const Shape& shape,
                    const std::string& file) {
  // Exponent bits all ones <=> Inf or NaN. Integer test: no FP exceptions, vectorises, and works
  // under -ffast-math too. Chunks let threads stop scanning once any bad value is known.
  const int64_t kChunk = 1 << 16;
  const int64_t chunks = (int64_t(n) + kChunk - 1) / kChunk;
  int64_t first = int64_t(n);
#pragma omp parallel for schedule(static) reduction(min : first) if (n > (1u << 20))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * kChunk, e = std::min<int64_t>(int64_t(n), b + kChunk);
    uint32_t any = 0;
    for (int64_t i = b; i < e; ++i) {
      uint32_t u;
      std::memcpy(&u, data + i, 4);
      any |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    if (!any) continue;
    for (int64_t i = b; i < e; ++i)
      if (!std::isfinite(data[i])) {
        first = std::min(first, i);
        break;
      }
  }
  if (first < int64_t(n))
    fail(file, ": tensor '", tensor_name, "' holds a non-finite value (", data[first], ") at element ", first,
         " of ", shape.str(), "; the checkpoint is corrupt (or saved from a diverged run)");
}

void save_parameters(const std::string& path, const std::vector<Parameter*>& params,
                     const std::map<std::string, std::string>& metadata,
                     const std::vector<NamedTensor>& extra) {
  std::vector<TensorToWrite> out;
  for (Parameter* p : params)
    out.push_back({p->name, p->value.dtype(), p->value.shape().vec(), p->value.raw()});
  for (const NamedTensor& e : extra)
    out.push_back({e.name, e.tensor.dtype(), e.tensor.shape().vec(), e.tensor.raw()});
  write_safetensors(path, out, metadata);
}

Tensor read_tensor_f32(const SafetensorsFile& file, const std::string& name) {
  const TensorView& t = file.get(name);
  Tensor x = Tensor::empty(Shape(t.shape));
  float* d = x.f32();
  switch (t.dtype) {
    case DType::f32:
    case DType::f16:
    case DType::bf16: {
      std::vector<float> v = to_f32(t);
      std::memcpy(d, v.data(), v.size() * 4);
      break;
    }
    case DType::i64:
      for (int64_t i = 0; i < t.numel(); ++i) {
        int64_t v;
        std::memcpy(&v, static_cast<const char*>(t.data) + 8 * i, 8);
        d[i] = float(v);
      }
      break;
    default:
      fail("tensor '", name, "' in ", file.path(), ": cannot read ", dtype_name(t.dtype), " as F32");
  }
  return x;
}

Tensor read_tensor_i32(const SafetensorsFile& file, const std::string& name) {
  const TensorView& t = file.get(name);
  Tensor x = Tensor::empty(Shape(t.shape), DType::i32);
  int32_t* d = x.ptr<int32_t>();
  const char* s = static_cast<const char*>(t.data);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype) {
      case DType::i64: {
        int64_t v;
        std::memcpy(&v, s + 8 * i, 8);
        d[i] = int32_t(v);
        break;
      }
      case DType::i32: std::memcpy(&d[i], s + 4 * i, 4); break;
      case DType::u8: d[i] = uint8_t(s[i]); break;
      case DType::i8: d[i] = int8_t(s[i]); break;
      default:
        fail("tensor '", name, "' in ", file.path(), ": expected an integer dtype, got ",
             dtype_name(t.dtype));
    }
  }
  return x;
}

}  // namespace mmkit::io
