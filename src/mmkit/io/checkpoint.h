// Moving Parameters in and out of safetensors files, strictly by name.
//
// Loading reports every problem at once, by tensor name:
//   missing tensors, unexpected tensors, "got [..], expected [..]" shapes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mmkit/autograd/parameter.h"
#include "mmkit/io/safetensors.h"

namespace mmkit::io {

// The problems a load found, listed in its error: the first kMaxLines in full,
// then "... and N more" (a wrong file can have hundreds).
class ProblemList {
 public:
  static constexpr size_t kMaxLines = 12;
  void add(const std::string& line) {
    if (lines_.size() < kMaxLines) lines_.push_back(line);
    ++n_;
  }
  int64_t count() const { return n_; }
  std::string str() const;  // "(N problems):\n  <line>\n  ...\n  ... and M more"

 private:
  std::vector<std::string> lines_;
  int64_t n_ = 0;
};

struct LoadOptions {
  // Names with one of these prefixes may be present without a parameter
  // (e.g. "optim." state in a training checkpoint).
  std::vector<std::string> ignore_prefixes;
  bool allow_unexpected = false;
};

// Copies (converting F16/BF16 to f32) every parameter's value from `file`.
// Refuses non-finite values (see require_finite).
void load_parameters(const SafetensorsFile& file, const std::vector<Parameter*>& params,
                     const LoadOptions& opt = {});

struct NamedTensor {
  std::string name;
  Tensor tensor;  // F32 (or any dtype) contiguous
};

// Writes parameters (and optional extra tensors) atomically with metadata.
void save_parameters(const std::string& path, const std::vector<Parameter*>& params,
                     const std::map<std::string, std::string>& metadata,
                     const std::vector<NamedTensor>& extra = {});

// Model loading policy: weights must be finite. A NaN or Inf in a parameter makes every output
// NaN (or silently wrong), so loaders refuse it, naming the tensor, the first bad element and the
// file: "<file>: tensor 'visual.proj' holds a non-finite value (nan) at element 12 of [768, 512];
// the checkpoint is corrupt". One pass over the data, parallel (~2 GB/s per core).
void require_finite(const float* data, size_t n, const std::string& tensor_name, const Shape& shape,
                    const std::string& file);

// Reads a tensor as an owned f32 Tensor (F32/F16/BF16, or integer dtypes
// converted) — used for fixtures and optimizer state.
Tensor read_tensor_f32(const SafetensorsFile& file, const std::string& name);
// Reads an integer tensor (I64/I32/U8/I8) as I32.
Tensor read_tensor_i32(const SafetensorsFile& file, const std::string& name);

}  // namespace mmkit::io
