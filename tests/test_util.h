// Shared helpers for numeric tests: fixture loading and tolerant comparison
// that reports the worst element (llm.c style: |a - b| <= abs + rel * |b|).
#pragma once
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/core/tensor.h"
#include "mmkit/data/fashion_mnist.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"

namespace mmkit::test {

inline std::string fixture(const std::string& name) {
  return std::string(MMKIT_SOURCE_DIR) + "/tests/fixtures/" + name;
}

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Max |x| over a tensor: the "scale" that relative tolerances refer to.
inline float max_abs(const Tensor& t) {
  float m = 0;
  const float* d = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) m = std::fmax(m, std::fabs(d[i]));
  return m;
}

// Element-wise check |got - want| <= abs_tol + rel_tol * |want|; on failure
// the message names the tensor, the worst index, both values and the excess.
inline ::testing::AssertionResult close(const std::string& what, const Tensor& got,
                                        const Tensor& want, float abs_tol, float rel_tol) {
  if (got.numel() != want.numel())
    return ::testing::AssertionFailure() << what << ": got " << got.shape().str() << ", expected "
                                         << want.shape().str();
  const float* a = got.f32();
  const float* b = want.f32();
  int64_t worst = -1;
  double worst_excess = 0, worst_diff = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double diff = std::fabs(double(a[i]) - b[i]);
    double excess = diff - (abs_tol + rel_tol * std::fabs(b[i]));
    if (!(diff == diff) || excess > worst_excess || (worst < 0 && excess > 0)) {
      if (!(excess <= worst_excess) || worst < 0) {
        worst = i;
        worst_excess = excess;
        worst_diff = diff;
      }
    }
  }
  if (worst >= 0)
    return ::testing::AssertionFailure()
           << what << ": worst element [" << worst << "] got " << a[worst] << ", expected "
           << b[worst] << " (|diff| " << worst_diff << " > abs " << abs_tol << " + rel " << rel_tol
           << " * |expected|)";
  return ::testing::AssertionSuccess();
}

// close() with a tolerance relative to the reference tensor's scale: |got - want| <= tol *
// (max |want| + |want|), as the module parity tests (fusion, relation, hop attention) compare.
inline ::testing::AssertionResult close_scaled(const std::string& what, const Tensor& got, const Tensor& want,
                                               float tol = 1e-4f) {
  return close(what, got, want, tol * max_abs(want), tol);
}

// Loads the parameters of one fixture group, stored as "<group><name>", into params (names are
// restored afterwards) and gives each a zeroed gradient. Fails if one is missing or has another
// shape; the file's other groups are ignored.
inline void load_fixture_group(const io::SafetensorsFile& f, const std::string& group,
                               std::vector<Parameter*>& params) {
  for (Parameter* p : params) p->name = group + p->name;
  io::LoadOptions o;
  o.allow_unexpected = true;
  io::load_parameters(f, params, o);
  for (Parameter* p : params) {
    p->name = p->name.substr(group.size());
    p->alloc_grad();
    p->grad.zero();
  }
}

// ---- Running the real `mmkit` binary (hostile-input and CLI tests)

// Per-rank fixtures of the data-parallel losses (tests/fixtures/*_dist*.safetensors): tensor
// "rank<r>.<name>" holds rank r's part. The ranks' [B, E] parts stacked into one [R*B, E] batch
// (what one process sees), the mean over ranks of a scalar, and rank r's rows of a [R*B, E] tensor.
inline Tensor stack_ranks(const io::SafetensorsFile& f, const std::string& name, int ranks) {
  std::vector<Tensor> parts;
  for (int r = 0; r < ranks; ++r) parts.push_back(io::read_tensor_f32(f, "rank" + std::to_string(r) + "." + name));
  const int64_t B = parts[0].shape()[0], E = parts[0].shape()[1];
  Tensor all = Tensor::empty(Shape{ranks * B, E});
  for (int r = 0; r < ranks; ++r) std::copy(parts[r].f32(), parts[r].f32() + B * E, all.f32() + r * B * E);
  return all;
}
inline float mean_over_ranks(const io::SafetensorsFile& f, const std::string& name, int ranks) {
  float m = 0;
  for (int r = 0; r < ranks; ++r) m += io::read_tensor_f32(f, "rank" + std::to_string(r) + "." + name).f32()[0] / ranks;
  return m;
}
inline Tensor rank_rows(const Tensor& all, int r, int64_t B) {
  const int64_t E = all.shape()[1];
  Tensor got = Tensor::empty(Shape{B, E});
  std::copy(all.f32() + r * B * E, all.f32() + (r + 1) * B * E, got.f32());
  return got;
}

struct RunResult {
  int code;         // exit status; 1000 if killed by a signal (a crash)
  std::string err;  // everything it wrote to stderr
};

// Runs `mmkit ARGS` through the shell (60 s timeout) with stdout discarded; `dir` receives the
// captured stderr.
inline RunResult run_mmkit(const std::string& args, const std::string& dir) {
  std::string err_file = dir + "/stderr.txt";
  std::string cmd = "timeout 60 " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " > /dev/null 2> " + err_file;
  int st = std::system(cmd.c_str());
  std::ifstream f(err_file);
  std::string err((std::istreambuf_iterator<char>(f)), {});
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 1000, err};
}

// `mpirun` with the flags every test needs: as root (CI) Open MPI needs --allow-run-as-root, and
// two ranks may exceed the cores CI gives. In the sanitizer build the ranks run without the
// exit-time leak check: Open MPI unloads its plugins in MPI_Finalize, so what they keep until exit
// is reported from an unknown module that no suppression can name (ASan and UBSan stay on, and the
// same code paths are leak-checked in the single-process tests).
inline std::string mpirun_launcher() {
  return "env ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -x ASAN_OPTIONS";
}

// The start of a command line that runs a program on `np` local ranks for a test.
inline std::string mpirun_prefix(int np, const std::string& extra, int timeout_s) {
  return "timeout " + std::to_string(timeout_s) + " " + mpirun_launcher() + " -np " + std::to_string(np) + " " + extra +
         " ";
}

// Debian's dataset-fashion-mnist (scripts/setup.sh installs it): the README's main job and the
// training tests use it; without it they skip.
inline bool have_fmnist() {
  return file_exists(std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}
#define REQUIRE_FMNIST()           \
  if (!mmkit::test::have_fmnist()) \
  GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"

inline std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/mmkit_" + tag + "_XXXXXX";
  if (!mkdtemp(&tmpl[0])) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// [u64 header length][header][data_bytes zero bytes]: hand-built safetensors files.
inline std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(&s[0], &n, 8);
  return s + header + std::string(data_bytes, '\0');
}

// The message of the mmkit::Error thrown by f, or "" (a test failure) when nothing is thrown.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected mmkit::Error";
  return "";
}

// A tiny random CLIP (32x32 images, 16 wide, 1 layer per tower) saved as DIR/clip.safetensors.
inline ClipConfig tiny_clip_config() {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 32;
  c.vision_patch_size = 16;
  c.vision_width = 16;
  c.vision_layers = 1;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 49408;
  c.transformer_width = 16;
  c.transformer_layers = 1;
  c.transformer_heads = 2;
  return c;
}

inline std::string tiny_clip(const std::string& dir) {
  ClipConfig c = tiny_clip_config();
  Clip m;
  m.init(c, 1);
  std::string path = dir + "/clip.safetensors";
  io::save_parameters(path, m.parameters(), {{"config", c.to_json()}});
  return path;
}

}  // namespace mmkit::test
