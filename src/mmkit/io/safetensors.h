// Safetensors checkpoints: strict mmapped reader and atomic writer.
//
//   auto f = mmkit::io::SafetensorsFile::open("vit.safetensors");
//   const auto& w = f.get("blocks.0.attn.qkv.weight");    // TensorView into the mapping
//   std::vector<float> wf = mmkit::io::to_f32(w);          // F32/F16/BF16 -> f32 copy
//   std::string cfg = f.metadata().at("config");
//
//   mmkit::io::write_safetensors("out.safetensors",
//       {{"w", mmkit::DType::f32, {2, 3}, ptr}}, {{"config", "{...}"}});
//
// Format (https://github.com/huggingface/safetensors, "Format" section):
//   [u64 little-endian N][N bytes UTF-8 JSON header][data buffer]
//   header = {"__metadata__": {str: str},            (optional)
//             "<name>": {"dtype": "F32", "shape": [d0, ..], "data_offsets": [begin, end]}, ..}
//   offsets are byte offsets relative to the start of the data buffer (file offset 8 + N).
// The reader is as strict about layout as the reference implementation: tensors must tile the data
// buffer without overlaps, gaps or trailing bytes, so a file that loads here loads in Python too.
// Dtypes outside mmkit::DType (F64, BOOL, ...) are rejected, and so are tensor names longer than
// kMaxTensorName bytes (real ones are < 100; the layout tables match names with std::regex, whose
// recursive matcher overflows the stack on names of ~100 KB).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mmkit/core/dtype.h"

namespace mmkit::io {

constexpr size_t kMaxTensorName = 1024;

// A tensor inside an open SafetensorsFile. `data` points into the read-only mapping and is valid
// while the file object lives. Alignment of `data` is whatever the writer chose: our writer and the
// Python one align every tensor to its element size, foreign files may not — to_f32() copies with
// memcpy and is safe either way.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  // [] for a 0-d (scalar) tensor
  const void* data = nullptr;
  size_t nbytes = 0;           // == numel() * dtype_size(dtype), checked at open
  int64_t numel() const;       // product of shape; 1 for 0-d, 0 if any dim is 0
};

class SafetensorsFile {
 public:
  // Maps `path` (PROT_READ, MAP_PRIVATE) and validates the header completely; every problem throws
  // mmkit::Error with the path and what is wrong.
  static SafetensorsFile open(const std::string& path);
  // Same validation over bytes already in memory (fuzzing, network payloads). Does not copy or
  // own `data`: it must outlive the returned object. `name` stands in for the path in messages.
  static SafetensorsFile from_memory(const void* data, size_t size, const std::string& name);

  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const TensorView* find(const std::string& name) const;                // nullptr if absent
  const TensorView& get(const std::string& name) const;                 // throws if absent
  const std::string& path() const { return path_; }
  // Drops the resident pages of [p, p + n) (whole pages inside the range only) when the range lies
  // in this file's mapping; a no-op otherwise (from_memory, foreign pointers). The data stays
  // readable: the mapping is private and never written, so pages are read back from the file on
  // the next access. Inference calls it after copying weights into a packed layout, so the copy
  // and the mapped original are not both resident.
  void release_pages(const void* p, size_t n) const;

 private:
  SafetensorsFile() = default;
  void unmap();
  void parse(const uint8_t* base, size_t size);  // fills metadata_, tensors_, index_ or throws

  std::string path_;
  void* map_ = nullptr;  // null for from_memory (nothing to unmap)
  size_t map_size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes, any alignment; may be null if numel == 0
};

// Writes `tensors` (header in the given order; data laid out by decreasing element size so every
// tensor is aligned to its element size without padding gaps) and string `metadata`.
// Atomic: writes <path>.tmp.<pid>.<n>, fsyncs it, renames it over `path`, fsyncs the directory.
// On any error (bad input, ENOSPC, unwritable or missing directory) the temp file is removed, an
// existing file at `path` is left untouched, and mmkit::Error is thrown.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// IEEE binary16 / bfloat16 <-> f32. Widening is exact (subnormals, ±0, ±inf, NaN payloads).
// Narrowing rounds to nearest, ties to even; overflow gives ±inf; NaN stays a (quiet) NaN.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

// Copies a F32, F16 or BF16 tensor to f32 (throws naming the tensor for other dtypes).
std::vector<float> to_f32(const TensorView& t);

}  // namespace mmkit::io
