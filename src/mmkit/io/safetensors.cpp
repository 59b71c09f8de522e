#include "mmkit/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "mmkit/core/error.h"

// The format and the raw copies below assume a little-endian host (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little endian");

namespace mmkit::io {
namespace {

using ojson = nlohmann::ordered_json;  // keeps header order, so tensors() follows the file

// Larger headers exist nowhere in practice (a 7B LLM's is ~30 KB); a bigger N means a non-safetensors
// file, and refusing it avoids parsing gigabytes of garbage.
constexpr uint64_t kMaxHeader = 100ull << 20;

const char* json_kind(const ojson& j) {
  if (j.is_number_float()) return "float";
  if (j.is_number()) return "integer";
  return j.type_name();
}

// Product of dims times the element size, or false on overflow of int64/size_t.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem, size_t* out) {
  uint64_t n = elem;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  if (n > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = static_cast<size_t>(n);
  return true;
}

// A JSON value that must be a non-negative integer fitting in int64.
bool as_nonneg(const ojson& j, int64_t* out) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
    return true;
  }
  return false;  // negative integers parse as number_integer; floats, strings etc. are rejected
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

TensorView parse_entry(const std::string& path, const std::string& name, const ojson& e,
                       const uint8_t* data, size_t data_size, int64_t* begin_out) {
  auto bad = [&](const auto&... m) { fail(path, ": tensor '", name, "': ", m...); };
  if (!e.is_object()) bad("entry is not a JSON object (got ", json_kind(e), ")");
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!e.contains(k)) bad("missing '", k, "'");

  TensorView t;
  t.name = name;
  const ojson& dt = e["dtype"];
  if (!dt.is_string()) bad("'dtype' must be a string (got ", json_kind(dt), ")");
  if (!dtype_from_name(dt.get<std::string>(), &t.dtype))
    bad("unknown dtype '", dt.get<std::string>(), "' (supported: F32 F16 BF16 I8 U8 I32 I64)");

  const ojson& sh = e["shape"];
  if (!sh.is_array()) bad("'shape' must be an array (got ", json_kind(sh), ")");
  for (const ojson& d : sh) {
    int64_t v = 0;
    if (!as_nonneg(d, &v)) bad("shape dims must be non-negative integers (got ", d.dump(), ")");
    t.shape.push_back(v);
  }
  if (!checked_nbytes(t.shape, dtype_size(t.dtype), &t.nbytes))
    bad("shape ", shape_str(t.shape), " x ", dtype_name(t.dtype), " overflows the byte count");

  const ojson& off = e["data_offsets"];
  int64_t b = 0, en = 0;
  if (!off.is_array() || off.size() != 2 || !as_nonneg(off[0], &b) || !as_nonneg(off[1], &en))
    bad("'data_offsets' must be [begin, end] non-negative integers (got ", off.dump(), ")");
  if (b > en) bad("data_offsets [", b, ", ", en, "]: begin > end");
  if (static_cast<uint64_t>(en) > data_size)
    bad("data_offsets [", b, ", ", en, "] out of the data buffer (", data_size, " bytes)");
  if (static_cast<size_t>(en - b) != t.nbytes)
    bad("data_offsets [", b, ", ", en, "] hold ", en - b, " bytes, but shape ", shape_str(t.shape),
        " x ", dtype_name(t.dtype), " needs ", t.nbytes);
  t.data = data + b;
  *begin_out = b;
  return t;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------- reader

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, ": file is ", size, " bytes, shorter than the 8-byte header length");
  }
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) fail("cannot mmap ", path, ": ", std::strerror(map_errno));

  SafetensorsFile f;  // owns the mapping from here: any fail() below unmaps it
  f.path_ = path;
  f.map_ = m;
  f.map_size_ = size;
  f.parse(static_cast<const uint8_t*>(m), size);
  return f;
}

SafetensorsFile SafetensorsFile::from_memory(const void* data, size_t size, const std::string& name) {
  if (size < 8) fail(name, ": ", size, " bytes, shorter than the 8-byte header length");
  SafetensorsFile f;
  f.path_ = name;
  f.parse(static_cast<const uint8_t*>(data), size);
  return f;
}

void SafetensorsFile::parse(const uint8_t* base, size_t size) {
  const std::string& path = path_;
  SafetensorsFile& f = *this;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n > kMaxHeader) fail(path, ": header length ", n, " is absurd (> 100 MB); not a safetensors file?");
  if (n > size - 8) fail(path, ": header length ", n, " exceeds the file size (", size, " bytes)");
  if (n == 0) fail(path, ": header is empty");

  // nlohmann keeps only one value for a repeated key, so duplicates are caught while parsing.
  // Depth 1 = keys of the top-level object.
  std::string dup;
  std::map<std::string, int> seen;
  ojson h;
  try {
    h = ojson::parse(base + 8, base + 8 + n, [&](int depth, ojson::parse_event_t ev, ojson& v) {
      if (ev == ojson::parse_event_t::key && depth == 1 && seen[v.get<std::string>()]++ && dup.empty())
        dup = v.get<std::string>();
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": header is not valid JSON: ", e.what());
  }
  if (!h.is_object()) fail(path, ": header is not a JSON object (got ", json_kind(h), ")");
  if (!dup.empty()) fail(path, ": duplicate entry '", dup, "' in header");

  const uint8_t* data = base + 8 + n;
  const size_t data_size = size - 8 - n;
  std::vector<int64_t> begins;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key().size() > kMaxTensorName)
      fail(path, ": tensor name of ", it.key().size(), " bytes (starting '", it.key().substr(0, 40),
           "...') is longer than the ", kMaxTensorName, "-byte limit");
    if (it.key() == "__metadata__") {
      const ojson& md = it.value();
      if (md.is_null()) continue;
      if (!md.is_object()) fail(path, ": __metadata__ is not an object (got ", json_kind(md), ")");
      for (auto m2 = md.begin(); m2 != md.end(); ++m2) {
        if (!m2.value().is_string())
          fail(path, ": __metadata__ value for '", m2.key(), "' is not a string (got ",
               json_kind(m2.value()), ")");
        f.metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    int64_t b = 0;
    f.tensors_.push_back(parse_entry(path, it.key(), it.value(), data, data_size, &b));
    f.index_[it.key()] = f.tensors_.size() - 1;
    begins.push_back(b);
  }

  // Tensors must tile the data buffer exactly (the reference reader's rule): sorted by offset, each
  // starts where the previous one ended, and the last ends at the end of the file. Empty tensors
  // sort before a non-empty one at the same offset, so they fit anywhere on a boundary.
  std::vector<size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(begins[a], f.tensors_[a].nbytes) < std::make_pair(begins[b], f.tensors_[b].nbytes);
  });
  int64_t expect = 0;
  const TensorView* prev = nullptr;
  for (size_t i : order) {
    const TensorView& t = f.tensors_[i];
    if (begins[i] < expect)
      fail(path, ": tensor '", t.name, "' (bytes ", begins[i], "..", begins[i] + (int64_t)t.nbytes,
           ") overlaps tensor '", prev->name, "'");
    if (begins[i] > expect)
      fail(path, ": bytes ", expect, "..", begins[i], " of the data buffer belong to no tensor (gap before '",
           t.name, "')");
    expect = begins[i] + static_cast<int64_t>(t.nbytes);
    prev = &t;
  }
  if (static_cast<size_t>(expect) != data_size)
    fail(path, ": data buffer is ", data_size, " bytes but the tensors cover ", expect,
         " (truncated file or trailing bytes)");
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    metadata_ = std::move(o.metadata_);
    tensors_ = std::move(o.tensors_);  // data pointers stay valid: the mapping does not move
    index_ = std::move(o.index_);
    o.map_ = nullptr;
    o.map_size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() {
  if (map_) munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail("tensor '", name, "' not found in ", path_);
  return *t;
}

// ---------------------------------------------------------------------------------------- writer

namespace {

int write_all(int fd, const void* p, size_t n) {  // 0 or an errno
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, std::min<size_t>(n, 1u << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

// Removes the temp file unless the rename succeeded.
struct TempFile {
  std::string path;
  int fd = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
  }
};

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate everything before touching the disk.
  std::vector<size_t> nbytes(tensors.size());
  std::map<std::string, int> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& t = tensors[i];
    auto bad = [&](const auto&... m) { fail("write_safetensors ", path, ": tensor '", t.name, "': ", m...); };
    if (t.name.empty() || t.name == "__metadata__") bad("invalid tensor name");
    if (t.name.size() > kMaxTensorName) bad("name longer than ", kMaxTensorName, " bytes (unreadable)");
    if (names[t.name]++) bad("duplicate tensor name");
    for (int64_t d : t.shape)
      if (d < 0) bad("negative dim in shape ", shape_str(t.shape));
    if (!checked_nbytes(t.shape, dtype_size(t.dtype), &nbytes[i])) bad("byte count overflows");
    if (nbytes[i] > 0 && !t.data) bad("null data for ", nbytes[i], " bytes");
  }

  // Data order: by decreasing element size, so each tensor's offset is a multiple of its element
  // size (all sizes are powers of two) and the data start is 8-aligned: every tensor is aligned
  // with no gaps, which the strict readers require.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t off = 0;
  for (size_t i : order) {
    begin[i] = off;
    off += nbytes[i];
  }

  ojson h = ojson::object();
  if (!metadata.empty()) {
    ojson md = ojson::object();
    for (const auto& [k, v] : metadata) md[k] = v;
    h["__metadata__"] = md;
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    h[tensors[i].name] = {{"dtype", dtype_name(tensors[i].dtype)},
                          {"shape", tensors[i].shape},
                          {"data_offsets", {begin[i], begin[i] + nbytes[i]}}};
  std::string header;
  try {
    header = h.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name or value that is not UTF-8
    fail("write_safetensors ", path, ": cannot encode header: ", e.what());
  }
  header.append((8 - header.size() % 8) % 8, ' ');  // 8 + N is a multiple of 8
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));

  static std::atomic<int> counter{0};  // distinct temp names for concurrent writers in one process
  TempFile tmp;
  tmp.path = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  auto sys_fail = [&](const char* what, int err) {
    fail("write_safetensors ", path, ": ", what, " ", tmp.path, ": ", std::strerror(err));
  };
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tmp.fd < 0) sys_fail("cannot create", errno);
  if (int e = write_all(tmp.fd, len, 8)) sys_fail("cannot write", e);
  if (int e = write_all(tmp.fd, header.data(), header.size())) sys_fail("cannot write", e);
  for (size_t i : order)
    if (int e = write_all(tmp.fd, tensors[i].data, nbytes[i])) sys_fail("cannot write", e);
  if (fsync(tmp.fd) != 0) sys_fail("cannot fsync", errno);
  int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) sys_fail("cannot close", errno);  // NFS reports write errors here
  if (std::rename(tmp.path.c_str(), path.c_str()) != 0) sys_fail("cannot rename", errno);
  tmp.keep = true;

  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    int e = errno;
    if (dfd >= 0) ::close(dfd);
    fail("write_safetensors ", path, ": written, but cannot fsync directory ", dir, ": ", std::strerror(e));
  }
  ::close(dfd);
}

// ------------------------------------------------------------------------------ f16 / bf16 / f32

namespace {
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
}  // namespace

void SafetensorsFile::release_pages(const void* p, size_t n) const {
  if (!map_ || !p || n == 0) return;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(map_), hi = lo + map_size_;
  uintptr_t a = reinterpret_cast<uintptr_t>(p), b = a + n;
  if (a < lo || b > hi) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  a = (a + page - 1) / page * page;
  b = b / page * page;
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) {  // ±0 and subnormals: man * 2^-24, exact in f32
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf, NaN with payload
  return bits_f32(sign | ((exp + 112) << 23) | (man << 13));          // rebias 15 -> 127
}

float bf16_to_f32(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

uint16_t f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00 | ((x >> 13) & 0x3ff);  // NaN: quiet, keep top payload
  if (x >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 (halfway past 65504) rounds to inf
  if (x < 0x38800000u) {                       // below 2^-14: f16 subnormal or zero
    if (x < 0x33000000u) return sign;          // < 2^-25 rounds to 0
    // value = m * 2^(e-150); f16 subnormal units are 2^-24, so q = m >> (126 - e), rounded.
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e, q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return sign | static_cast<uint16_t>(q + (rem > half || (rem == half && (q & 1))));
  }
  // Normal: rebias 127 -> 15 and drop 13 mantissa bits; a carry into the exponent is correct.
  const uint32_t q = (x - 0x38000000u) >> 13, rem = x & 0x1fffu;
  return sign | static_cast<uint16_t>(q + (rem > 0x1000u || (rem == 0x1000u && (q & 1))));
}

uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

std::vector<float> to_f32(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  const uint8_t* p = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::f32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case DType::f16:
    case DType::bf16: {
      const bool half = t.dtype == DType::f16;
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);  // views from foreign files may be unaligned
        out[i] = half ? f16_to_f32(v) : bf16_to_f32(v);
      }
      break;
    }
    default:
      fail("to_f32: tensor '", t.name, "' has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  }
  return out;
}

}  // namespace mmkit::io
