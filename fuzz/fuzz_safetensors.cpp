// Fuzz target: the safetensors header/offset parser (io/safetensors.h), then what every loader does
// with an accepted file: layout detection, the layout rename/transform tables (q/k/v packing,
// transposes) and the F16/BF16 -> F32 conversion.
// Input: the file's bytes.
#include <cstdint>
#include <memory>

#include "fuzz_common.h"
#include "mmkit/io/layouts.h"
#include "mmkit/io/safetensors.h"

using namespace mmkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<io::SafetensorsFile> f;
  if (!fuzz::accepts([&] { f = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::from_memory(data, size, "fuzz.safetensors")); }))
    return 0;
  // The parser promises: every view lies inside the buffer and nbytes == numel * element size.
  for (const io::TensorView& t : f->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    if (p < data || p + t.nbytes > data + size) fuzz::violated("tensor view outside the input");
    if (size_t(t.numel()) * dtype_size(t.dtype) != t.nbytes) fuzz::violated("nbytes != numel * dtype size");
    if (f->find(t.name) != &t) fuzz::violated("find() does not return the tensor");
    if (t.dtype == DType::f32 || t.dtype == DType::f16 || t.dtype == DType::bf16) {
      std::vector<float> v = io::to_f32(t);
      if (int64_t(v.size()) != t.numel()) fuzz::violated("to_f32 size");
    } else {
      fuzz::accepts([&] { io::to_f32(t); });
    }
  }
  const io::Layout layout = io::detect_layout(*f);
  fuzz::accepts([&] { io::remap(f, layout); });
  return 0;
}
