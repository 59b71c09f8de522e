// Safetensors reader/writer: round trips, atomic replacement, hostile files, f16/bf16 conversions,
// and parity with tools/safetensors_py.py in both directions.
#include "mmkit/io/safetensors.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/core/error.h"

namespace fs = std::filesystem;
using mmkit::DType;
using namespace mmkit::io;

namespace {

// A fresh directory per test, removed afterwards.
struct TmpDir {
  std::string path;
  TmpDir() {
    char tmpl[] = "/tmp/mmkit_st_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TmpDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A file from a literal header and `data_bytes` zero bytes of data.
std::string st_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// Files in `dir` whose name contains ".tmp." (leftovers of a failed write).
int count_temp_files(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) ++n;
  return n;
}

template <class T>
std::vector<T> as_vec(const TensorView& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

// ------------------------------------------------------------------------------------ round trip

TEST(Safetensors, RoundTripAllDtypes) {
  TmpDir dir;
  const std::vector<float> w = {1.5f, -2.25f, 0.f, 3e-8f, -1e30f, 7.f};
  std::vector<uint16_t> h, b;
  for (float x : {0.5f, -1.f, 65504.f, 6e-8f, 1e-3f}) h.push_back(f32_to_f16(x));
  for (float x : {1.f, -3.140625f, 1e38f}) b.push_back(f32_to_bf16(x));
  const std::vector<int8_t> i8 = {-128, 0, 127};
  const std::vector<uint8_t> u8 = {0, 200, 255, 1, 2};  // odd size: later tensors must still align
  const std::vector<int32_t> i32 = {INT32_MIN, 5};
  const std::vector<int64_t> i64 = {INT64_MAX, -1};
  const float scalar = 42.f;
  const std::vector<TensorToWrite> in = {
      {"u8", DType::u8, {5}, u8.data()},           {"w", DType::f32, {2, 3}, w.data()},
      {"h", DType::f16, {5}, h.data()},            {"b", DType::bf16, {3}, b.data()},
      {"i8", DType::i8, {1, 3}, i8.data()},        {"i32", DType::i32, {2}, i32.data()},
      {"i64", DType::i64, {2, 1}, i64.data()},     {"scalar", DType::f32, {}, &scalar},
      {"empty", DType::i32, {0, 4}, nullptr}};
  const std::map<std::string, std::string> md = {{"format", "pt"}, {"config", "{\"dim\": 4}"}};
  const std::string path = dir / "a.safetensors";
  write_safetensors(path, in, md);
  EXPECT_EQ(count_temp_files(dir.path), 0);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata(), md);
  ASSERT_EQ(f.tensors().size(), in.size());
  const std::string raw = read_all(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ((8 + n) % 8, 0u) << "data buffer must start 8-aligned";
  for (size_t i = 0; i < in.size(); ++i) {
    const TensorView& t = f.tensors()[i];
    SCOPED_TRACE(in[i].name);
    EXPECT_EQ(t.name, in[i].name) << "header order must be preserved";
    EXPECT_EQ(t.dtype, in[i].dtype);
    EXPECT_EQ(t.shape, in[i].shape);
    EXPECT_EQ(&f.get(t.name), &t);
    ASSERT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * mmkit::dtype_size(t.dtype));
    if (t.nbytes) {
      EXPECT_EQ(std::memcmp(t.data, in[i].data, t.nbytes), 0);
    }
  }
  // Per-tensor alignment, checked on the mapping (page-aligned base + 8-aligned data start).
  for (const TensorView& t : f.tensors())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % mmkit::dtype_size(t.dtype), 0u) << t.name;
  EXPECT_EQ(f.get("scalar").numel(), 1);
  EXPECT_EQ(f.get("empty").numel(), 0);
  EXPECT_EQ(as_vec<int64_t>(f.get("i64")), i64);
  EXPECT_EQ(to_f32(f.get("w")), w);
  const std::vector<float> hf = to_f32(f.get("h"));
  const std::vector<float> h_expect = {0.5f, -1.f, 65504.f, 5.9604644775390625e-08f, 0.0010004043579101562f};
  EXPECT_EQ(hf, h_expect);
  const std::vector<float> b_expect = {1.f, -3.140625f, bf16_to_f32(f32_to_bf16(1e38f))};
  EXPECT_EQ(to_f32(f.get("b")), b_expect);
}

TEST(Safetensors, OverwriteMoveAndLookup) {
  TmpDir dir;
  const std::string path = dir / "m.safetensors";
  const float a = 1.f, b[2] = {2.f, 3.f};
  write_safetensors(path, {{"a", DType::f32, {}, &a}});
  write_safetensors(path, {{"b", DType::f32, {2}, b}});  // replaces the first file
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.find("a"), nullptr);
  ASSERT_NE(f.find("b"), nullptr);
  SafetensorsFile g = std::move(f);  // views keep pointing into the same mapping
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(to_f32(g.get("b")), (std::vector<float>{2.f, 3.f}));
  try {
    g.get("nope");
    FAIL() << "expected mmkit::Error";
  } catch (const mmkit::Error& e) {
    EXPECT_EQ(std::string(e.what()), "tensor 'nope' not found in " + path);
  }
  // A file with no tensors and no metadata is valid: header "{}" padded to 8.
  write_safetensors(path, {});
  EXPECT_TRUE(SafetensorsFile::open(path).tensors().empty());
}

TEST(Safetensors, ToF32RejectsIntegers) {
  TmpDir dir;
  const int32_t v[1] = {1};
  write_safetensors(dir / "i.safetensors", {{"ids", DType::i32, {1}, v}});
  auto f = SafetensorsFile::open(dir / "i.safetensors");
  EXPECT_THROW(to_f32(f.get("ids")), mmkit::Error);
}

TEST(Safetensors, WriterRejectsBadInput) {
  TmpDir dir;
  const std::string path = dir / "x.safetensors";
  const float v[2] = {1.f, 2.f};
  write_safetensors(path, {{"keep", DType::f32, {2}, v}});
  const std::string before = read_all(path);
  const std::vector<std::pair<std::string, std::vector<TensorToWrite>>> cases = {
      {"duplicate tensor name", {{"a", DType::f32, {1}, v}, {"a", DType::f32, {1}, v}}},
      {"negative dim", {{"a", DType::f32, {-1}, v}}},
      {"null data", {{"a", DType::f32, {2}, nullptr}}},
      {"invalid tensor name", {{"__metadata__", DType::f32, {1}, v}}},
      {"byte count overflows", {{"a", DType::f32, {1ll << 62, 4}, v}}},
  };
  for (const auto& [expect, tensors] : cases) {
    try {
      write_safetensors(path, tensors);
      ADD_FAILURE() << "no error for: " << expect;
    } catch (const mmkit::Error& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(read_all(path), before);
  EXPECT_EQ(count_temp_files(dir.path), 0);
}

// ------------------------------------------------------------------------------------ atomicity

TEST(Safetensors, AtomicWriteFailsCleanlyOnBadDirectory) {
  TmpDir dir;
  const float v = 1.f;
  write_bytes(dir / "plain_file", "x");
  for (const std::string& path : {dir / "plain_file/a.safetensors", dir / "no_such_dir/a.safetensors"}) {
    try {
      write_safetensors(path, {{"v", DType::f32, {}, &v}});
      ADD_FAILURE() << "no error writing " << path;
    } catch (const mmkit::Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(read_all(dir / "plain_file"), "x");
  EXPECT_EQ(count_temp_files(dir.path), 0);
}

TEST(Safetensors, AtomicWriteRemovesTempWhenRenameFails) {
  // The destination is a non-empty directory: the temp file is fully written, then rename fails.
  TmpDir dir;
  const std::string path = dir / "ckpt";
  fs::create_directory(path);
  write_bytes(path + "/inside", "old");
  const float v = 1.f;
  EXPECT_THROW(write_safetensors(path, {{"v", DType::f32, {}, &v}}), mmkit::Error);
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_EQ(read_all(path + "/inside"), "old");
  EXPECT_EQ(count_temp_files(dir.path), 0);
}

TEST(Safetensors, AtomicWriteKeepsOldFileWhenDiskFillsUp) {
  // Simulates ENOSPC mid-write: in a child process, RLIMIT_FSIZE makes write() fail with EFBIG
  // once the temp file reaches 4 KB (SIGXFSZ ignored so the call returns an error instead).
  TmpDir dir;
  const std::string path = dir / "big.safetensors";
  const float old_v[3] = {1.f, 2.f, 3.f};
  write_safetensors(path, {{"old", DType::f32, {3}, old_v}});
  const std::string before = read_all(path);

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
    std::vector<float> big(1 << 18, 0.5f);  // 1 MB
    try {
      write_safetensors(path, {{"new", DType::f32, {1 << 18}, big.data()}});
    } catch (const mmkit::Error& e) {
      _exit(std::string(e.what()).find("cannot write") != std::string::npos ? 0 : 2);
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error thrown, 2: wrong message, 3: setrlimit failed";
  EXPECT_EQ(read_all(path), before);
  EXPECT_EQ(count_temp_files(dir.path), 0);
  EXPECT_EQ(SafetensorsFile::open(path).get("old").numel(), 3);
}

// ------------------------------------------------------------------------------- hostile files

TEST(Safetensors, HostileFilesAreRejected) {
  TmpDir dir;
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto one = [](const std::string& entry, size_t data) { return st_file("{\"a\":" + entry + "}", data); };
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"empty_file", "", "shorter than the 8-byte"},
      {"five_bytes", "abcde", "shorter than the 8-byte"},
      {"absurd_header_length", le64(1ull << 40) + ok, "absurd"},
      {"header_beyond_file", le64(ok.size() + 100) + ok, "exceeds the file size"},
      {"zero_header", le64(0) + std::string(8, '\0'), "header is empty"},
      {"not_json", st_file("{abc", 0), "not valid JSON"},
      {"truncated_json", st_file(ok.substr(0, ok.size() - 3), 8), "not valid JSON"},
      {"trailing_garbage_json", st_file(ok + "x", 8), "not valid JSON"},
      {"invalid_utf8", st_file("{\"\xff\":1}", 0), "not valid JSON"},
      {"json_array", st_file("[1,2]", 0), "not a JSON object"},
      {"entry_not_object", one("3", 0), "entry is not a JSON object"},
      {"missing_dtype", one(R"({"shape":[2],"data_offsets":[0,8]})", 8), "missing 'dtype'"},
      {"missing_shape", one(R"({"dtype":"F32","data_offsets":[0,8]})", 8), "missing 'shape'"},
      {"missing_offsets", one(R"({"dtype":"F32","shape":[2]})", 8), "missing 'data_offsets'"},
      {"unknown_dtype", one(R"({"dtype":"F64","shape":[1],"data_offsets":[0,8]})", 8), "unknown dtype 'F64'"},
      {"dtype_not_string", one(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", 4), "'dtype' must be a string"},
      {"shape_not_array", one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", 8), "'shape' must be an array"},
      {"negative_dim", one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", 8), "non-negative integers"},
      {"float_dim", one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", 8), "non-negative integers"},
      {"numel_overflow", one(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]})", 8),
       "overflows"},
      {"huge_dim", one(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]})", 8),
       "non-negative integers"},
      {"offsets_reversed", one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})", 8), "begin > end"},
      {"offsets_one_value", one(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})", 8), "must be [begin, end]"},
      {"offsets_negative", one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", 8), "must be [begin, end]"},
      {"offsets_beyond_buffer", one(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", 8),
       "out of the data buffer"},
      {"nbytes_mismatch", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8), "needs 12"},
      {"overlap", st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       "overlaps tensor 'a'"},
      {"gap", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
       "belong to no tensor"},
      {"trailing_bytes", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 8), "trailing bytes"},
      {"duplicate_name", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "duplicate entry 'a'"},
      {"metadata_value_not_string", st_file(R"({"__metadata__":{"epoch":3}})", 0), "value for 'epoch' is not a string"},
      {"metadata_not_object", st_file(R"({"__metadata__":"x"})", 0), "__metadata__ is not an object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir / (std::string(c.name) + ".safetensors");
    write_bytes(path, c.bytes);
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << c.name << ": opened without error";
    } catch (const mmkit::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": message '" << msg << "' lacks '" << c.expect << "'";
      EXPECT_NE(msg.find(path), std::string::npos) << c.name << ": message '" << msg << "' lacks the path";
    }
  }
  // The "ok" header itself is accepted, so the cases above fail for their stated reason.
  write_bytes(dir / "ok.safetensors", st_file(ok, 8));
  EXPECT_EQ(SafetensorsFile::open(dir / "ok.safetensors").get("a").numel(), 2);
  // Space padding after the JSON is allowed by the format.
  write_bytes(dir / "pad.safetensors", st_file(ok + "     ", 8));
  EXPECT_NO_THROW(SafetensorsFile::open(dir / "pad.safetensors"));

  EXPECT_THROW(SafetensorsFile::open(dir / "missing.safetensors"), mmkit::Error);
  EXPECT_THROW(SafetensorsFile::open(dir.path), mmkit::Error);  // a directory
}

TEST(Safetensors, CorruptedFilesThrowOrLoadButNeverCrash) {
  // Every truncation and 2000 random byte corruptions of a valid file: open() either succeeds or
  // throws mmkit::Error (anything else — a crash, another exception type — fails the test).
  TmpDir dir;
  const std::string src = dir / "src.safetensors", bad = dir / "bad.safetensors";
  const float w[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t h[3] = {1, 2, 3};
  write_safetensors(src, {{"w", DType::f32, {2, 3}, w}, {"h", DType::f16, {3}, h}}, {{"k", "v"}});
  const std::string good = read_all(src);
  auto try_open = [&](const std::string& bytes) {
    write_bytes(bad, bytes);
    try {
      auto f = SafetensorsFile::open(bad);
      for (const auto& t : f.tensors())
        if (t.dtype == DType::f32 || t.dtype == DType::f16) to_f32(t);
    } catch (const mmkit::Error&) {
    }
  };
  for (size_t n = 0; n < good.size(); ++n) {
    write_bytes(bad, good.substr(0, n));
    EXPECT_THROW(SafetensorsFile::open(bad), mmkit::Error) << "truncated to " << n << " bytes";
  }
  uint64_t rng = 12345;
  auto next = [&] { return rng = rng * 6364136223846793005ull + 1442695040888963407ull, rng >> 33; };
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    for (int k = 0, nk = 1 + next() % 3; k < nk; ++k) b[next() % b.size()] = static_cast<char>(next());
    try_open(b);
  }
}

// ------------------------------------------------------------------------------ f16 / bf16

TEST(Safetensors, HalfConversionSpotValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.f);
  EXPECT_EQ(f16_to_f32(0xc100), -2.5f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.f, -24));         // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.f, -24));      // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.f, -14));         // smallest normal
  EXPECT_EQ(bits(f16_to_f32(0x8000)), 0x80000000u);            // -0
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));

  EXPECT_EQ(f32_to_f16(1.f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.f), 0x7bff);                      // below the halfway point
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);                      // tie rounds to even = inf
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -25)), 0x0000);         // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.f, -25)), 0x0002);         // 1.5 units: tie -> even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.f, -25)), 0x0400);      // rounds up into the normal range
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(1.f, -11)), 0x3c00);   // tie -> even
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(3.f, -11)), 0x3c02);   // tie -> even (up)
  EXPECT_EQ(f32_to_f16(-0.f), 0x8000);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(NAN) & 0x7e00, 0x7e00);

  EXPECT_EQ(bf16_to_f32(0x3f80), 1.f);
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.f, -133));       // bf16 subnormal
  EXPECT_EQ(f32_to_bf16(1.f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3f80);   // tie -> even
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(3.f, -8)), 0x3f82);   // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(FLT_MAX), 0x7f80);                     // rounds to inf
  EXPECT_EQ(f32_to_bf16(-0.f), 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  // A NaN whose payload sits only in the low bits must not truncate to inf.
  float low_nan;
  const uint32_t low_nan_bits = 0x7f800001u;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(low_nan))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(low_nan))));
}

#ifdef __FLT16_MAX__
// The compiler's _Float16 (IEEE binary16, round to nearest even) as an independent oracle.
TEST(Safetensors, HalfConversionMatchesCompilerFloat16) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 x;
    const uint16_t h16 = static_cast<uint16_t>(h);
    std::memcpy(&x, &h16, 2);
    const float want = static_cast<float>(x), got = f16_to_f32(h16);
    if (std::isnan(want) ? !std::isnan(got) : bits(want) != bits(got))
      FAIL() << "f16_to_f32(0x" << std::hex << h << "): got bits 0x" << bits(got) << ", want 0x" << bits(want);
  }
  // A stride through every f32 bit pattern (both signs, all exponents) plus neighbourhoods of the
  // rounding boundaries.
  std::vector<uint32_t> pats;
  for (uint64_t u = 0; u < (1ull << 32); u += 509) pats.push_back(static_cast<uint32_t>(u));
  for (uint32_t c : {0x477fe000u, 0x477ff000u, 0x33000000u, 0x38800000u, 0x387fc000u, 0x3f801000u})
    for (int d = -64; d <= 64; ++d) pats.push_back(c + d), pats.push_back((c + d) | 0x80000000u);
  for (uint32_t u : pats) {
    float f;
    std::memcpy(&f, &u, 4);
    const _Float16 x = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &x, 2);
    const uint16_t got = f32_to_f16(f);
    const bool nan = std::isnan(f);
    if (nan ? (got & 0x7c00) != 0x7c00 || !(got & 0x3ff) : got != want)
      FAIL() << "f32_to_f16(" << f << " = bits 0x" << std::hex << u << "): got 0x" << got << ", want 0x" << want;
  }
}
#endif

// --------------------------------------------------------------------------- Python parity

// tests/fixtures/safetensors_py_sample.safetensors was written by tools/safetensors_py.py:
//   /usr/bin/python3 tools/safetensors_py.py make-sample tests/fixtures/safetensors_py_sample.safetensors
// (values below mirror _make_sample in that script).
TEST(Safetensors, ReadsPythonWrittenFixture) {
  const std::string path = std::string(MMKIT_SOURCE_DIR) + "/tests/fixtures/safetensors_py_sample.safetensors";
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"config", "{\"dim\": 4}"}}));
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "half", "bf", "step", "empty", "bytes", "codes", "ids"}));

  const TensorView& w = f.get("weight");
  EXPECT_EQ(w.dtype, DType::f32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(to_f32(w), (std::vector<float>{-1.f, -0.5f, 0.f, 0.5f, 1.f, 1.5f}));

  const std::vector<float> h = to_f32(f.get("half"));
  const std::vector<float> h_want = {0.f, -0.f, 1.f, -2.5f, 65504.f, std::ldexp(1.f, -24), std::ldexp(1.f, -15),
                                     INFINITY, -INFINITY};
  ASSERT_EQ(h.size(), 10u);
  for (size_t i = 0; i < h_want.size(); ++i)
    EXPECT_EQ(bits(h[i]), bits(h_want[i])) << "half[" << i << "] = " << h[i] << ", want " << h_want[i];
  EXPECT_TRUE(std::isnan(h[9]));

  // torch's f32 -> bf16 rounding must agree with ours.
  const TensorView& bf = f.get("bf");
  const std::vector<uint16_t> bf_bits = as_vec<uint16_t>(bf);
  const float bf_src[4] = {1.0f, -3.140625f, 1e-3f, 3.0e38f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bf_bits[i], f32_to_bf16(bf_src[i])) << "bf[" << i << "]";

  const TensorView& step = f.get("step");
  EXPECT_EQ(step.dtype, DType::i64);
  EXPECT_TRUE(step.shape.empty());
  EXPECT_EQ(as_vec<int64_t>(step), (std::vector<int64_t>{7}));
  EXPECT_EQ(f.get("empty").shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(f.get("empty").nbytes, 0u);
  EXPECT_EQ(as_vec<uint8_t>(f.get("bytes")), (std::vector<uint8_t>{0, 1, 255}));
  EXPECT_EQ(as_vec<int8_t>(f.get("codes")), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(f.get("codes").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(as_vec<int32_t>(f.get("ids")), (std::vector<int32_t>{-1, 2147483647}));
}

TEST(Safetensors, PythonReadsOurFile) {
  if (access("/usr/bin/python3", X_OK) != 0 || std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  TmpDir dir;
  const std::string path = dir / "cpp.safetensors";
  const std::vector<float> w = {0.25f, -8.f, 1e-20f, 3.f};
  const uint16_t h[3] = {f32_to_f16(0.1f), 0x0001, 0x7c00};
  const uint16_t b[2] = {f32_to_bf16(-2.5f), f32_to_bf16(1e-30f)};
  const int64_t s = -9;
  const uint8_t u[3] = {7, 8, 9};
  write_safetensors(path,
                    {{"u", DType::u8, {3}, u}, {"w", DType::f32, {2, 2}, w.data()}, {"h", DType::f16, {3}, h},
                     {"b", DType::bf16, {2}, b}, {"s", DType::i64, {}, &s}, {"e", DType::f32, {0}, nullptr}},
                    {{"note", "héllo"}});
  const std::string cmd = "/usr/bin/python3 " + std::string(MMKIT_SOURCE_DIR) + "/tools/safetensors_py.py dump " + path;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << "python failed on our file; output: " << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["metadata"]["note"], "héllo");
  const nlohmann::json& t = j["tensors"];
  EXPECT_EQ(t.size(), 6u);
  auto values = [&](const char* name) { return t[name]["values"].get<std::vector<double>>(); };
  EXPECT_EQ(t["w"]["shape"], nlohmann::json::array({2, 2}));
  EXPECT_EQ(t["w"]["dtype"], "F32");
  EXPECT_EQ(values("w"), (std::vector<double>{0.25, -8.0, double(1e-20f), 3.0}));
  EXPECT_EQ(t["h"]["values"][0].get<double>(), double(f16_to_f32(h[0])));
  EXPECT_EQ(t["h"]["values"][1].get<double>(), std::ldexp(1.0, -24));
  EXPECT_EQ(t["h"]["values"][2], "inf");
  EXPECT_EQ(t["b"]["dtype"], "BF16");
  EXPECT_EQ(values("b"), (std::vector<double>{-2.5, double(bf16_to_f32(b[1]))}));
  EXPECT_EQ(t["s"]["shape"], nlohmann::json::array());
  EXPECT_EQ(values("s"), (std::vector<double>{-9.0}));
  EXPECT_EQ(values("u"), (std::vector<double>{7, 8, 9}));
  EXPECT_EQ(t["e"]["shape"], nlohmann::json::array({0}));
}
