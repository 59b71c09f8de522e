// Element types a tensor can hold. f32 is the compute type; f16/bf16/int8 are
// storage types for weights (converted on load or by dedicated kernels).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mmkit {

enum class DType : uint8_t { f32, f16, bf16, i8, u8, i32, i64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i8: return 1;
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

// Names as used by safetensors headers ("F32", "F16", "BF16", "I8", "U8", "I32", "I64").
const char* dtype_name(DType t);
// Returns false when `name` is not a known safetensors dtype.
bool dtype_from_name(const std::string& name, DType* out);

}  // namespace mmkit
