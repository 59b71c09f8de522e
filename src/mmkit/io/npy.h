// NumPy .npy writer (format version 1.0) for float32 matrices, written
// atomically (temp file + rename).
#pragma once
#include <string>

#include "mmkit/core/tensor.h"

namespace mmkit::io {

void write_npy(const std::string& path, const Tensor& t);

}  // namespace mmkit::io
