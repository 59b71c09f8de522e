#include "mmkit/core/dtype.h"

namespace mmkit {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

bool dtype_from_name(const std::string& n, DType* out) {
  static const struct { const char* n; DType t; } k[] = {
      {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"I8", DType::i8},
      {"U8", DType::u8},   {"I32", DType::i32}, {"I64", DType::i64}};
  for (auto& e : k)
    if (n == e.n) {
      *out = e.t;
      return true;
    }
  return false;
}

}  // namespace mmkit
