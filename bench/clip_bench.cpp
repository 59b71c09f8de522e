// CLIP ViT-B/32 inference: mmkit (f32, int8, bf16, f16 weights) vs PyTorch vs ONNX Runtime, side by
// side in one run, image and text towers (issue #7; started as issue #3's encode_image benchmark).
//
//   build/clip_bench [--quick] [--towers image,text] [--batches 1,8,32] [--threads 1,2]
//                    [--formats f32,int8,bf16,f16] [--warmup 2] [--reps 10] [--reps-large 3]
//                    [--startup-runs 3] [--dir /tmp/mmkit_bench] [--no-torch] [--no-ort] [--no-startup]
//                    [--write-docs] [--doc FILE] [--no-spin-variant]
//   --quick = --batches 1,32 --threads 2 --formats f32,int8 --reps 5 --reps-large 2 --startup-runs 2
//   --arch siglip: SigLIP ViT-B/16 at 224 px (google/siglip-base-patch16-224 sizes: width 768, 12
//   layers, MLP 3072, 196 patches, attention-pooling head; text 768 x 12, 64 tokens, vocabulary 32000)
//   instead of CLIP ViT-B/32; weights DIR/siglip_b16*.safetensors (mmkit's SigLIP names + config,
//   made by torch_clip_bench.py make-weights with bench/torch_siglip.py); no ONNX Runtime peer.
//
// 1. Weights: bench/torch_clip_bench.py make-weights writes seeded random ViT-B/32 weights (OpenAI
//    names, config in the metadata) to DIR/clip_vitb32.safetensors (reused while its config matches);
//    infer::quantize_clip (= `mmkit quantize`) writes DIR/clip_vitb32_{int8,bf16,f16}.safetensors and
//    bench/torch_clip_onnx.py exports DIR/clip_{image,text}.onnx from the same weights (each redone
//    only when older than the weights).
// 2. PyTorch (Debian python3-torch, bench/torch_clip_bench.py time --tower image|text): no_grad, in
//    its best configuration here (OMP_WAIT_POLICY=passive, OPENBLAS_CORETYPE unset so OpenBLAS uses
//    its AVX-512 kernels; docs/BENCHMARKS.md has the comparison of its threading settings). Its
//    first run dumps the seeded inputs (N(0,1) images; token rows) and its embeddings, which every
//    other runtime then uses.
// 3. ONNX Runtime (npm onnxruntime-node, bench/ort/ort_clip_bench.js): intra-op threads T, all graph
//    optimisations, default spin-waiting.
// 4. mmkit: infer::ClipEngine in this process (set_num_threads(T)), one engine per weight format,
//    under mmkit's default OpenMP policy (passive); f32 and int8 also in a re-executed copy of this
//    program (--worker) under libgomp's spinning default (GOMP_SPINCOUNT=300000), at 2+ threads:
//    "mmkit f32 (spin)" — the counterpart of ORT's spinning pool.
// Batches > 8 use --reps-large repetitions. Every runtime prints min and median wall ms per call.
// GFLOP/s counts 2 x the multiply-adds of the tower's GEMMs (patchify/q/k/v/QK^T/PV/out-proj/MLP/
// projection); LayerNorm, softmax and activations are not counted. "% peak" is against the fp32
// GEMM peak measured at the start of the run with the same thread count (oneDNN sgemm, the best of
// three shapes); the int8 and bf16 GEMM peaks are printed beside it.
// Checks (exit 1 if one fails): mmkit f32 rows within cosine 0.9999 of PyTorch's; int8 rows within
// 0.995 of mmkit f32 (acceptance 2); the other formats are reported. Zero-shot top-1 agreement:
// for each image of the input batch, the best-matching text of the text batch, int8 vs f32.
// Only when asked (--write-docs: docs/BENCHMARKS.md of the source tree; --doc FILE: that file) do the
// table, the machine load (uptime before and after) and the command go into the document between the
// markers <!-- clip_bench:begin --> and <!-- clip_bench:end -->; otherwise the source tree is not touched.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench_child.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_engine.h"
#include "mmkit/infer/packed_linear.h"
#include "mmkit/infer/quantize.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/ops/gemm.h"

using namespace mmkit;
using mmkit::bench::file_exists;
using mmkit::bench::self_dir;

namespace {

const std::string kSrc = MMKIT_SOURCE_DIR_STR;
const std::string kPython = "/usr/bin/python3";
const std::string kPeer = kSrc + "/bench/torch_clip_bench.py";
const std::string kVocab = kSrc + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";
const std::string kImage = kSrc + "/../shared/reference/inputs/astronaut.png";

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stats {
  double min = 0, median = 0;
};
Stats stats_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

// ---- child processes: bench/bench_child.h (fork/exec without a shell, stdout captured, rusage of
// that child alone; JSON lines out of its output).
using bench::ChildResult;
using bench::Env;
using bench::json_lines;
using bench::run_child;
// PyTorch's best setting here: passive OpenMP waiting, and OpenBLAS free to pick its AVX-512 kernels
// (this machine's environment pins OPENBLAS_CORETYPE=Haswell against old OpenBLAS misdetection bugs).
const Env kTorchBest = {{"OMP_WAIT_POLICY", "passive"}, {"OPENBLAS_CORETYPE", ""}, {"OPENBLAS_L2_SIZE", ""}};

ClipConfig vit_b_32() { return ClipConfig{}; }  // ClipConfig's defaults are OpenAI ViT-B/32

// google/siglip-base-patch16-224 (transformers' SiglipConfig defaults).
ClipConfig siglip_b_16() {
  ClipConfig c;
  c.arch = "siglip";
  c.embed_dim = 768;
  c.image_resolution = 224;
  c.vision_patch_size = 16;
  c.vision_width = 768;
  c.vision_layers = 12;
  c.vision_heads = 12;
  c.vision_mlp = 3072;
  c.context_length = 64;
  c.vocab_size = 32000;
  c.transformer_width = 768;
  c.transformer_layers = 12;
  c.transformer_heads = 12;
  c.text_mlp = 3072;
  c.activation = "gelu_tanh";
  c.eps = 1e-6f;
  return c;
}

bool same_config(const ClipConfig& a, const ClipConfig& b) {
  return a.embed_dim == b.embed_dim && a.image_resolution == b.image_resolution &&
         a.vision_patch_size == b.vision_patch_size && a.vision_width == b.vision_width &&
         a.vision_layers == b.vision_layers && a.vision_heads == b.vision_heads &&
         a.context_length == b.context_length && a.vocab_size == b.vocab_size &&
         a.transformer_width == b.transformer_width && a.transformer_layers == b.transformer_layers &&
         a.transformer_heads == b.transformer_heads && a.activation == b.activation && a.arch == b.arch &&
         a.vision_mlp_dim() == b.vision_mlp_dim() && a.text_mlp_dim() == b.text_mlp_dim();
}

// The existing file is reused only if it opens cleanly and records the wanted config.
void ensure_weights(const std::string& path, const std::string& check_path, const ClipConfig& want) {
  if (file_exists(path)) {
    try {
      auto f = io::SafetensorsFile::open(path);
      auto it = f.metadata().find("config");
      if (it != f.metadata().end() && same_config(ClipConfig::from_json(it->second), want)) {
        std::printf("weights: %s (reused)\n", path.c_str());
        return;
      }
    } catch (const Error& e) {
      std::printf("weights: %s unusable (%s); regenerating\n", path.c_str(), e.what());
    }
  }
  nlohmann::json cfg = nlohmann::json::parse(want.to_json());
  if (!want.siglip()) cfg.erase("activation");  // the Python CLIP is OpenAI's QuickGELU one
  std::printf("weights: creating %s ...\n", path.c_str());
  // Everything derived from the old weights: PyTorch's dumps, quantised files, ONNX exports.
  for (const char* f : {"_check_image.safetensors", "_check_text.safetensors", "_int8.safetensors", "_bf16.safetensors",
                        "_f16.safetensors"})
    std::remove((path.substr(0, path.size() - 12) + f).c_str());
  std::remove(check_path.c_str());
  ChildResult r = run_child({kPython, kPeer, "make-weights", "--out", path, "--seed", "0",
                             "--config", cfg.dump()});
  MMKIT_CHECK(r.ok, "creating the benchmark weights failed: ", kPython, " ", kPeer,
              " make-weights (is python3-torch installed?)");
  std::printf("weights: created in %.1f s\n", r.wall_s);
}

// 2 x multiply-adds of the vision tower for one image.
double vision_gflop(const ClipConfig& c) {
  const double R = double(c.image_resolution), p = double(c.vision_patch_size);
  const double P = (R / p) * (R / p), N = double(c.vision_tokens()), W = double(c.vision_width), E = double(c.embed_dim);
  const double F = double(c.vision_mlp_dim());
  const double patch = P * 3 * p * p * W;
  const double layer = N * 3 * W * W      // q, k, v
                       + 2 * N * N * W    // QK^T and PV over all heads
                       + N * W * W        // out-proj
                       + 2 * N * W * F;   // MLP c_fc + c_proj
  // CLIP: the projection; SigLIP: the pooling head (k/v of every token, q/out-proj/MLP of one row).
  const double head = c.siglip() ? N * 2 * W * W + 2 * N * W + 2 * W * W + 2 * W * F : W * E;
  return 2 * (patch + double(c.vision_layers) * layer + head) / 1e9;
}

// 2 x multiply-adds of the text tower for one row of context_length tokens (every runtime here
// computes the full T x T scores under the causal mask).
double text_gflop(const ClipConfig& c) {
  const double N = double(c.context_length), W = double(c.transformer_width), E = double(c.embed_dim);
  const double layer = N * 3 * W * W + 2 * N * N * W + N * W * W + 2 * N * W * double(c.text_mlp_dim());
  return 2 * (double(c.transformer_layers) * layer + W * E) / 1e9;
}

std::vector<int> parse_ints(const std::string& s, const char* what) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    int b = std::atoi(t.c_str());
    MMKIT_CHECK(b > 0, what, ": expected positive integers separated by commas, got '", s, "'");
    v.push_back(b);
  }
  MMKIT_CHECK(!v.empty(), what, " is empty");
  return v;
}

std::vector<std::string> parse_words(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) v.push_back(t);
  return v;
}

double cpu_seconds() {
  timespec t;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::string uptime_line() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return "load average " + a + ", " + b + ", " + c;
}

double load1() {
  std::ifstream f("/proc/loadavg");
  double a = 0;
  f >> a;
  return a;
}

struct Options {
  std::vector<std::string> towers = {"image", "text"}, formats = {"f32", "int8", "bf16", "f16"};
  std::vector<int> batches = {1, 8, 32}, threads = {1, 2};
  int warmup = 2, reps = 10, reps_large = 3, startup_runs = 3;
  std::string dir = "/tmp/mmkit_bench", doc = kSrc + "/docs/BENCHMARKS.md", command;
  bool torch = true, ort = true, startup = true, write = false, quick = false, spin = true;
  std::string arch = "clip";  // clip (ViT-B/32) | siglip (ViT-B/16)
  std::string worker;  // internal: time this mmkit format only (re-executed under another OpenMP policy)
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(i ? argv[i] : "build/clip_bench");
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--quick") {
      o.quick = true;
      o.batches = {1, 32};
      o.threads = {2};
      o.formats = {"f32", "int8"};
      o.reps = 5;
      o.reps_large = 2;
      o.startup_runs = 2;
    }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      MMKIT_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--quick") continue;
    else if (a == "--towers") o.towers = parse_words(next());
    else if (a == "--formats") o.formats = parse_words(next());
    else if (a == "--batches") o.batches = parse_ints(next(), "--batches");
    else if (a == "--threads") o.threads = parse_ints(next(), "--threads");
    else if (a == "--warmup") o.warmup = std::atoi(next().c_str());
    else if (a == "--reps") o.reps = std::atoi(next().c_str());
    else if (a == "--reps-large") o.reps_large = std::atoi(next().c_str());
    else if (a == "--startup-runs") o.startup_runs = std::atoi(next().c_str());
    else if (a == "--dir") o.dir = next();
    else if (a == "--doc") o.doc = next(), o.write = true;
    else if (a == "--write-docs") o.write = true;
    else if (a == "--no-torch") o.torch = false;
    else if (a == "--no-ort") o.ort = false;
    else if (a == "--no-startup") o.startup = false;
    else if (a == "--no-spin-variant") o.spin = false;
    else if (a == "--worker") o.worker = next();
    else if (a == "--arch") o.arch = next();
    else fail("unknown argument ", a, " (see the comment at the top of bench/clip_bench.cpp)");
  }
  MMKIT_CHECK(o.warmup >= 1 && o.reps >= 1 && o.reps_large >= 1 && o.startup_runs >= 1,
              "--warmup, --reps, --reps-large and --startup-runs must be >= 1");
  for (auto& t : o.towers) MMKIT_CHECK(t == "image" || t == "text", "--towers: image and/or text, got '", t, "'");
  MMKIT_CHECK(o.arch == "clip" || o.arch == "siglip", "--arch: clip or siglip, got '", o.arch, "'");
  if (o.arch == "siglip") o.ort = false;  // no ONNX export of the SigLIP peer
  MMKIT_CHECK(!(o.write && o.arch == "siglip"), "--write-docs / --doc: the documented table is CLIP's (not with --arch siglip)");
  for (auto& f : o.formats)
    MMKIT_CHECK(f == "f32" || f == "int8" || f == "bf16" || f == "f16", "--formats: f32, int8, bf16, f16; got '", f, "'");
  MMKIT_CHECK(std::find(o.formats.begin(), o.formats.end(), "f32") != o.formats.end(),
              "--formats must include f32 (the reference of the other formats)");
  return o;
}

// One timed configuration: runtime x tower x threads x batch.
struct Timing {
  int reps = 0;
  Stats ms;
  double cpu_ms = 0;  // median process CPU time per call (all threads, user + system)
};
using Key = std::tuple<std::string, std::string, int, int>;  // runtime, tower, threads, batch

// GEMM peaks with T threads: the best of three ViT-B/32 b32 shapes (M = 1600 tokens).
struct Peaks {
  double f32 = 0, int8 = 0, bf16 = 0;  // GFLOP (GOP) per wall second
  double f32_cpu = 0;                  // GFLOP per CPU second (all threads), for the CPU-time columns
};
Peaks measure_peaks(int T) {
  set_num_threads(T);
  Peaks p;
  Rng rng(3);
  const int64_t M = 1600;
  const int64_t shapes[3][2] = {{768, 2304}, {768, 3072}, {3072, 768}};
  infer::LinearScratch s;
  for (auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    std::vector<float> x(size_t(M * K)), w(size_t(N * K)), y(size_t(M * N));
    for (auto& v : x) v = rng.normal();
    for (auto& v : w) v = rng.normal() * 0.02f;
    std::vector<int8_t> wq(w.size());
    std::vector<float> ws(static_cast<size_t>(N));
    infer::quantize_rows_s8(w.data(), N, K, wq.data(), ws.data());
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = io::f32_to_bf16(w[i]);
    double cpu_best = 1e9;
    auto best = [&](auto&& f) {
      double b = 1e9;
      cpu_best = 1e9;
      for (int r = 0; r < 4; ++r) {
        auto t0 = Clock::now();
        const double c0 = cpu_seconds();
        f();
        if (r) b = std::min(b, seconds_since(t0)), cpu_best = std::min(cpu_best, cpu_seconds() - c0);
      }
      return 2.0 * M * N * K / b / 1e9;
    };
    p.f32 = std::max(p.f32, best([&] { ops::gemm(false, true, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N); }));
    p.f32_cpu = std::max(p.f32_cpu, 2.0 * M * N * K / cpu_best / 1e9);
    infer::PackedLinear q({infer::WeightKind::int8, wq.data(), ws.data(), nullptr, N, K, "peak", {}}, infer::Epilogue::none);
    q.pack();
    // The int8 figure includes quantising x per row and the s32 -> f32 rescaling pass, as inference does.
    p.int8 = std::max(p.int8, best([&] { q.forward(x.data(), M, y.data(), s); }));
    infer::PackedLinear b({infer::WeightKind::bf16, wb.data(), nullptr, nullptr, N, K, "peak", {}}, infer::Epilogue::none);
    b.pack();
    p.bf16 = std::max(p.bf16, best([&] { b.forward(x.data(), M, y.data(), s); }));
  }
  return p;
}

struct Inputs {
  std::vector<float> images;  // [n, 3, R, R]
  std::vector<int32_t> ids;   // [n, T]
  std::vector<float> torch_img, torch_txt;  // PyTorch's embeddings of them [n, E]
  int n_img = 0, n_txt = 0;
};

// Reads a dump of torch_clip_bench.py time --dump (inputs + embeddings).
void read_dump(const std::string& path, const std::string& tower, const ClipConfig& c, int bmax, Inputs* in) {
  auto f = io::SafetensorsFile::open(path);
  const io::TensorView& em = f.get("embeddings");
  MMKIT_CHECK(em.dtype == DType::f32 && em.shape.size() == 2 && em.shape[0] >= bmax && em.shape[1] == c.embed_dim,
              path, ": 'embeddings' has shape ", Shape(em.shape).str());
  std::vector<float> e = io::to_f32(em);
  if (tower == "image") {
    const io::TensorView& im = f.get("images");
    const int64_t R = c.image_resolution;
    MMKIT_CHECK(im.dtype == DType::f32 && im.shape == std::vector<int64_t>({em.shape[0], 3, R, R}), path,
                ": 'images' has shape ", Shape(im.shape).str());
    in->images = io::to_f32(im);
    in->torch_img = e;
    in->n_img = int(em.shape[0]);
  } else {
    const io::TensorView& id = f.get("ids");
    MMKIT_CHECK(id.dtype == DType::i64 && id.shape == std::vector<int64_t>({em.shape[0], c.context_length}), path,
                ": 'ids' has shape ", Shape(id.shape).str(), " ", dtype_name(id.dtype));
    const int64_t* p = static_cast<const int64_t*>(id.data);
    in->ids.assign(p, p + id.numel());
    in->torch_txt = e;
    in->n_txt = int(em.shape[0]);
  }
}

// Seeded inputs of our own when PyTorch does not run.
void own_inputs(const std::string& tower, const ClipConfig& c, int n, Inputs* in) {
  Rng rng(1);
  if (tower == "image") {
    in->images.resize(size_t(n * 3 * c.image_resolution * c.image_resolution));
    for (auto& v : in->images) v = rng.normal();
    in->n_img = n;
  } else {
    const int64_t T = c.context_length, V = c.vocab_size;
    in->ids.assign(size_t(n * T), 0);
    for (int i = 0; i < n; ++i) {
      int64_t len = 3 + rng.randint(T - 4);
      in->ids[size_t(i * T)] = int32_t(V - 2);
      for (int64_t t = 1; t < len; ++t) in->ids[size_t(i * T + t)] = int32_t(1 + rng.randint(V - 3));
      in->ids[size_t(i * T + len)] = int32_t(V - 1);
    }
    in->n_txt = n;
  }
}

struct CosStats {
  double min_cos = 1;
  int rows = 0;
};
CosStats cosines(const float* a, const float* b, int64_t rows, int64_t E) {
  CosStats s;
  s.rows = int(rows);
  for (int64_t i = 0; i < rows; ++i) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t e = 0; e < E; ++e) {
      ab += double(a[i * E + e]) * b[i * E + e];
      aa += double(a[i * E + e]) * a[i * E + e];
      bb += double(b[i * E + e]) * b[i * E + e];
    }
    s.min_cos = std::min(s.min_cos, ab / std::sqrt(aa * bb + 1e-300));
  }
  return s;
}

// For each image row, the index of the text row with the highest cosine.
std::vector<int> zero_shot_top1(const std::vector<float>& img, int ni, const std::vector<float>& txt, int nt, int64_t E) {
  std::vector<int> best;
  for (int i = 0; i < ni; ++i) {
    int b = 0;
    double bc = -2;
    for (int t = 0; t < nt; ++t) {
      double c = cosines(&img[size_t(i * E)], &txt[size_t(t * E)], 1, E).min_cos;
      if (c > bc) bc = c, b = t;
    }
    best.push_back(b);
  }
  return best;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

int run(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const std::string load_before = uptime_line();
  const double load_at_start = load1();
  if (std::getenv("GOMP_SPINCOUNT")) ::unsetenv("GOMP_SPINCOUNT");  // children start from the user's environment
  const int bmax = *std::max_element(o.batches.begin(), o.batches.end());
  auto reps_for = [&](int b) { return b > 8 ? o.reps_large : o.reps; };
  ::mkdir(o.dir.c_str(), 0755);
  const std::string stem = o.arch == "siglip" ? "siglip_b16" : "clip_vitb32";
  const std::string weights = o.dir + "/" + stem + ".safetensors";
  const ClipConfig want = o.arch == "siglip" ? siglip_b_16() : vit_b_32();
  const std::map<std::string, double> gflop = {{"image", vision_gflop(want)}, {"text", text_gflop(want)}};
  const bool worker = !o.worker.empty();  // re-executed copy: only times mmkit (see "spinning" below)
  if (!worker) {
    std::printf("%s inference benchmark: towers", o.arch == "siglip" ? "SigLIP ViT-B/16 (224 px)" : "CLIP ViT-B/32");
    for (auto& t : o.towers) std::printf(" %s (%.2f GFLOP/item)", t.c_str(), gflop.at(t));
    std::printf(", %s\n", load_before.c_str());
    if (load1() >= 0.5)
      std::printf("WARNING: the machine is busy (1-minute load %.2f >= 0.5): timings are not representative\n", load1());
    ensure_weights(weights, o.dir + "/" + stem + "_check.safetensors", want);
  }
  auto older = [&](const std::string& p) {
    struct stat a, b;
    return ::stat(p.c_str(), &a) != 0 || ::stat(weights.c_str(), &b) != 0 || a.st_mtime < b.st_mtime;
  };
  std::map<std::string, std::string> files = {{"f32", weights}};
  for (auto& f : o.formats) {
    if (f == "f32") continue;
    files[f] = o.dir + "/" + stem + "_" + f + ".safetensors";
    if (!worker && older(files[f])) {
      auto t0 = Clock::now();
      infer::QuantizeReport r = infer::quantize_clip(weights, files[f], f);
      std::printf("quantize %s: %.0f MB -> %.0f MB in %.1f s\n", f.c_str(), r.in_bytes / 1e6, r.out_bytes / 1e6,
                  seconds_since(t0));
    }
  }
  std::map<Key, Timing> T;
  std::map<std::pair<std::string, std::string>, std::vector<float>> emb;  // (runtime, tower) -> [bmax, E]
  Inputs in;
  const std::string batches_s = [&] {
    std::string s;
    for (int b : o.batches) s += (s.empty() ? "" : ",") + std::to_string(b);
    return s;
  }();
  auto parse_lines = [&](const std::string& runtime, const std::string& tower, int th, const ChildResult& r) {
    bool ok = r.ok;
    int got = 0;
    for (auto& j : json_lines(r.out)) {
      if (j.contains("batch") && j.contains("ms_median")) {
        T[{runtime, tower, th, j["batch"].get<int>()}] = {j["reps"].get<int>(), {j["ms_min"].get<double>(), j["ms_median"].get<double>()},
                                                          j.value("cpu_ms_median", 0.0)};
        ++got;
      }
      if (j.contains("embeddings") && j["embeddings"].is_array()) {
        std::vector<float> e;
        for (auto& row : j["embeddings"])
          for (auto& v : row) e.push_back(v.get<float>());
        emb[{runtime, tower}] = e;
      }
    }
    if (!ok || got != int(o.batches.size())) std::printf("  %s %s failed (exit status or output)\n", runtime.c_str(), tower.c_str());
  };

  // ---- PyTorch (first: its dump gives everyone the inputs)
  for (const auto& tower : o.towers) {
    const std::string dump = o.dir + "/" + stem + "_check_" + tower + ".safetensors";
    bool have = false;
    if (o.torch && !worker)
      for (int th : o.threads) {
        std::vector<std::string> cmd = {kPython, kPeer, "time", "--model", weights, "--tower", tower, "--seed", "1",
                                        "--batches", batches_s, "--threads", std::to_string(th), "--warmup",
                                        std::to_string(o.warmup), "--reps", std::to_string(o.reps), "--reps-large",
                                        std::to_string(o.reps_large)};
        if (!have) cmd.insert(cmd.end(), {"--dump", dump});
        std::printf("running pytorch %s, %d thread(s) ...\n", tower.c_str(), th);
        std::fflush(stdout);
        parse_lines("pytorch", tower, th, run_child(cmd, kTorchBest));
        have = have || file_exists(dump);
      }
    if (file_exists(dump)) {
      try {
        read_dump(dump, tower, want, bmax, &in);
        continue;
      } catch (const Error& e) {
        std::printf("  %s unusable (%s)\n", dump.c_str(), e.what());
      }
    }
    own_inputs(tower, want, bmax, &in);
  }

  // ---- ONNX Runtime
  const std::string ort_dir = kSrc + "/bench/ort";
  if (o.ort && !worker) {
    if (!file_exists(ort_dir + "/node_modules/onnxruntime-node")) {
      std::printf("onnxruntime: %s/node_modules missing: run `npm install --ignore-scripts` there; skipped\n", ort_dir.c_str());
    } else {
      ChildResult ex = run_child({kPython, kSrc + "/bench/torch_clip_onnx.py", "--model", weights, "--out-dir", o.dir});
      if (!ex.ok) std::printf("onnxruntime: ONNX export failed; skipped\n");
      for (const auto& tower : o.towers) {
        if (!ex.ok) break;
        // The inputs the others use, as a safetensors file the node script reads.
        const std::string input = o.dir + "/ort_input_" + tower + ".safetensors";
        std::vector<int64_t> ids64(in.ids.begin(), in.ids.end());
        if (tower == "image")
          io::write_safetensors(input, {{"images", DType::f32, {in.n_img, 3, want.image_resolution, want.image_resolution}, in.images.data()}});
        else
          io::write_safetensors(input, {{"ids", DType::i64, {in.n_txt, want.context_length}, ids64.data()}});
        for (int th : o.threads)
          for (int spin : {1, 0}) {
            // ORT's default spin-waits in its intra-op pool; without spinning it can be faster when
            // other jobs share the cores. Both run; "vs ORT" is against the faster of the two.
            const std::string rt = spin ? "onnxruntime" : "onnxruntime (no spin)";
            if (!spin && th == 1) continue;  // one thread: no pool to spin
            std::printf("running %s %s, %d thread(s) ...\n", rt.c_str(), tower.c_str(), th);
            std::fflush(stdout);
            parse_lines(rt, tower, th,
                        run_child({"/usr/bin/node", ort_dir + "/ort_clip_bench.js", "--model", o.dir + "/clip_" + tower + ".onnx",
                                   "--input", input, "--name", tower == "image" ? "images" : "ids", "--batches", batches_s,
                                   "--threads", std::to_string(th), "--warmup", std::to_string(o.warmup), "--reps",
                                   std::to_string(o.reps), "--reps-large", std::to_string(o.reps_large), "--spin",
                                   std::to_string(spin)}));
          }
      }
    }
  }

  // ---- mmkit
  const std::string towers_s = [&] {
    std::string r;
    for (auto& t : o.towers) r += (r.empty() ? "" : ",") + t;
    return r;
  }();
  auto time_engine = [&](infer::ClipEngine& e, const std::string& rt, const std::string& tower, int th) {
    const int64_t E = want.embed_dim;
    std::vector<float> out(size_t(bmax * E));
    std::vector<int32_t> ids(in.ids.begin(), in.ids.end());
    set_num_threads(th);
    for (int b : o.batches) {
      std::vector<double> ms, cpu;
      for (int r = 0; r < o.warmup + reps_for(b); ++r) {
        auto t1 = Clock::now();
        const double c1 = cpu_seconds();
        if (tower == "image") e.encode_image(in.images.data(), b, out.data());
        else e.encode_text(ids.data(), b, want.context_length, out.data());
        double dt = seconds_since(t1) * 1e3, dc = (cpu_seconds() - c1) * 1e3;
        if (r >= o.warmup) ms.push_back(dt), cpu.push_back(dc);
        if (r == 0 && b == bmax) emb[{rt, tower}] = out;
      }
      T[{rt, tower, th, b}] = {reps_for(b), stats_of(ms), stats_of(cpu).median};
      if (worker)
        std::printf("{\"tower\":\"%s\",\"threads\":%d,\"batch\":%d,\"reps\":%d,\"ms_min\":%.3f,\"ms_median\":%.3f,"
                    "\"cpu_ms_median\":%.3f}\n", tower.c_str(), th, b, reps_for(b), stats_of(ms).min, stats_of(ms).median,
                    stats_of(cpu).median);
    }
  };
  if (worker) {
    auto e = infer::ClipEngine::open(o.worker == "f32" ? weights : o.dir + "/" + stem + "_" + o.worker + ".safetensors");
    for (const auto& tower : o.towers)
      for (int th : o.threads) time_engine(*e, "mmkit " + o.worker, tower, th);
    return 0;
  }
  std::map<int, Peaks> peaks;
  for (int th : o.threads) {
    peaks[th] = measure_peaks(th);
    std::printf("GEMM peak, %d thread(s): f32 %.0f GFLOP/s, int8 %.0f GOP/s, bf16 %.0f GFLOP/s (M=1600)\n", th,
                peaks[th].f32, peaks[th].int8, peaks[th].bf16);
  }
  for (const auto& f : o.formats) {
    const std::string rt = "mmkit " + f;
    auto t0 = Clock::now();
    auto e = infer::ClipEngine::open(files[f]);
    double open_ms = seconds_since(t0) * 1e3;
    for (const auto& tower : o.towers)
      for (int th : o.threads) {
        std::printf("running %s %s, %d thread(s) ...\n", rt.c_str(), tower.c_str(), th);
        std::fflush(stdout);
        time_engine(*e, rt, tower, th);
      }
    std::printf("  %s: open %.0f ms, packed weights %.0f MB, activation buffers %.0f MB\n", rt.c_str(), open_ms,
                e->packed_weight_bytes() / 1e6, e->workspace_bytes() / 1e6);
  }
  // mmkit's default OpenMP policy is passive (idle pool threads sleep at once: right on a shared
  // machine); ORT spin-waits by default. The same engine under libgomp's spinning default
  // (GOMP_SPINCOUNT=300000), in a re-executed copy of this program, is timed too (2+ threads).
  if (o.spin)
    for (const auto& f : o.formats) {
      if (f != "f32" && f != "int8") continue;
      std::vector<std::string> cmd = {self_dir() + "/clip_bench", "--worker", f, "--dir", o.dir, "--batches", batches_s,
                                      "--warmup", std::to_string(o.warmup), "--reps", std::to_string(o.reps),
                                      "--reps-large", std::to_string(o.reps_large), "--towers", towers_s, "--arch", o.arch};
      std::string th_s;
      for (int th : o.threads)
        if (th > 1) th_s += (th_s.empty() ? "" : ",") + std::to_string(th);
      if (th_s.empty()) continue;
      cmd.insert(cmd.end(), {"--threads", th_s});
      std::printf("running mmkit %s (spinning OpenMP pool), %s thread(s) ...\n", f.c_str(), th_s.c_str());
      std::fflush(stdout);
      ChildResult r = run_child(cmd, {{"OMP_WAIT_POLICY", ""}, {"GOMP_SPINCOUNT", "300000"}});
      int got = 0;
      for (auto& j : json_lines(r.out))
        if (j.contains("tower") && j.contains("ms_median")) {
          T[{"mmkit " + f + " (spin)", j["tower"].get<std::string>(), j["threads"].get<int>(), j["batch"].get<int>()}] = {
              j["reps"].get<int>(), {j["ms_min"].get<double>(), j["ms_median"].get<double>()}, j["cpu_ms_median"].get<double>()};
          ++got;
        }
      if (!r.ok || got == 0) std::printf("  mmkit %s (spin) failed\n", f.c_str());
    }

  // ---- table
  std::vector<std::string> runtimes;
  for (auto& f : o.formats) {
    runtimes.push_back("mmkit " + f);
    if (f == "f32" || f == "int8") runtimes.push_back("mmkit " + f + " (spin)");
  }
  runtimes.push_back("pytorch");
  runtimes.push_back("onnxruntime");
  runtimes.push_back("onnxruntime (no spin)");
  // "vs ORT" compares with ORT's faster setting (spinning or not) at that tower/threads/batch.
  auto ort_best = [&](const std::string& tower, int th, int b) -> const Timing* {
    const Timing* best = nullptr;
    for (const char* n : {"onnxruntime", "onnxruntime (no spin)"}) {
      auto it = T.find({n, tower, th, b});
      if (it != T.end() && (!best || it->second.ms.median < best->ms.median)) best = &it->second;
    }
    return best;
  };
  std::ostringstream md;
  md << "| tower | threads | batch | runtime | min ms | median ms | items/s | GFLOP/s | % f32 peak | vs PyTorch | vs ORT "
        "| CPU ms | vs ORT (CPU) | % f32 peak (CPU) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::printf("\n%-6s %3s %5s %-21s %9s %10s %9s %8s %7s %9s %9s %9s %9s\n", "tower", "thr", "batch", "runtime", "min ms",
              "median ms", "items/s", "GFLOP/s", "%peak", "vs torch", "vs ORT", "CPU ms", "ORT CPU");
  for (const auto& tower : o.towers)
    for (int th : o.threads)
      for (int b : o.batches)
        for (const auto& rt : runtimes) {
          auto it = T.find({rt, tower, th, b});
          if (it == T.end()) continue;
          const Timing& t = it->second;
          const double gf = b * gflop.at(tower) * 1e3 / t.ms.median;
          const bool is_ort = rt.rfind("onnxruntime", 0) == 0;
          auto peer_of = [&](const std::string& peer) -> const Timing* {
            if (peer == "onnxruntime") return is_ort ? nullptr : ort_best(tower, th, b);
            auto p = T.find({peer, tower, th, b});
            return p == T.end() || rt == peer ? nullptr : &p->second;
          };
          auto ratio = [&](const std::string& peer) -> std::string {
            const Timing* p = peer_of(peer);
            return p ? fmt("%.2fx", p->ms.median / t.ms.median) : "";
          };
          auto cpu_ratio = [&](const std::string& peer) -> std::string {
            const Timing* p = peer_of(peer);
            if (!p || p->cpu_ms <= 0 || t.cpu_ms <= 0) return "";
            return fmt("%.2fx", p->cpu_ms / t.cpu_ms);
          };
          std::printf("%-6s %3d %5d %-21s %9.1f %10.1f %9.2f %8.1f %6.0f%% %9s %9s %9.1f %9s\n", tower.c_str(), th, b,
                      rt.c_str(), t.ms.min, t.ms.median, b * 1e3 / t.ms.median, gf, 100 * gf / peaks[th].f32,
                      ratio("pytorch").c_str(), ratio("onnxruntime").c_str(), t.cpu_ms, cpu_ratio("onnxruntime").c_str());
          md << "| " << tower << " | " << th << " | " << b << " | " << rt << " | " << fmt("%.1f", t.ms.min) << " | "
             << fmt("%.1f", t.ms.median) << " | " << fmt("%.2f", b * 1e3 / t.ms.median) << " | " << fmt("%.1f", gf)
             << " | " << fmt("%.0f%%", 100 * gf / peaks[th].f32) << " | " << ratio("pytorch") << " | "
             << ratio("onnxruntime") << " | " << fmt("%.1f", t.cpu_ms) << " | " << cpu_ratio("onnxruntime") << " | "
             << (t.cpu_ms > 0 ? fmt("%.0f%%", 100 * (b * gflop.at(tower) * 1e3 / t.cpu_ms) / peaks[th].f32_cpu) : "")
             << " |\n";
        }
  std::printf("(vs X = X's median / this row's median: > 1 means this row is faster; %% f32 peak = GFLOP/s over the\n"
              " measured fp32 GEMM peak at that thread count; CPU ms = median process CPU time per call, all threads,\n"
              " which other jobs on the machine inflate far less than wall time; spinning pool threads count)\n");
  std::ostringstream notes;
  notes << "- vs X = X's median / this row's median (> 1: this row is faster); vs ORT uses ORT's faster setting (default "
           "spin-waiting pool or allow_spinning=0) at that tower, thread count and batch. CPU ms = median process CPU time per "
           "call over all threads (user + system); ORT's and libgomp's spinning pool threads count in it. It is far "
           "less inflated than wall time when other jobs share the cores, so on a busy machine compare it at 1 thread. "
           "% f32 peak (CPU) = GFLOP per CPU-second over the fp32 GEMM's GFLOP per CPU-second in the same run.\n";
  if (std::find(o.towers.begin(), o.towers.end(), "text") != o.towers.end() && !in.ids.empty()) {
    // mmkit runs the text tower up to the batch's last end-of-text position (causal mask: later
    // positions cannot change the pooled token); PyTorch and ORT run all T. GFLOP/s counts T for all.
    const int64_t T = want.context_length;
    std::string used;
    for (int b : o.batches) {
      int64_t tu = 1;
      for (int i = 0; i < b; ++i) {
        int64_t e = 0;
        for (int64_t t = 1; t < T; ++t)
          if (in.ids[size_t(i * T + t)] > in.ids[size_t(i * T + e)]) e = t;
        tu = std::max(tu, e + 1);
      }
      used += fmt("%s%lld at batch %d", used.empty() ? "" : ", ", (long long)tu, b);
    }
    notes << "- Text inputs: seeded random token rows of 3-75 tokens plus start/end in a context of " << T
          << ". mmkit's text tower stops at the batch's last end-of-text position (causal mask: later positions "
             "cannot change the pooled token) — " << used << " positions of " << T
          << "; PyTorch and ONNX Runtime run all " << T << ". GFLOP/s counts " << T << " positions for every runtime.\n";
  }
  for (int th : o.threads)
    notes << fmt("- GEMM peaks measured in this run, %d thread(s): f32 %.0f GFLOP/s (%.0f per CPU-second), int8 %.0f "
                 "GOP/s (incl. per-row activation quantisation and rescaling), bf16 %.0f GFLOP/s\n", th, peaks[th].f32,
                 peaks[th].f32_cpu, peaks[th].int8, peaks[th].bf16);

  // ---- the acceptance ratios: each side in its faster OpenMP/spinning setting, image tower,
  // the largest thread count of the run
  {
    const int th = o.threads.back();
    auto best_of = [&](std::vector<std::string> names, int b) -> const Timing* {
      const Timing* best = nullptr;
      for (auto& n : names) {
        auto it = T.find({n, "image", th, b});
        if (it != T.end() && (!best || it->second.ms.median < best->ms.median)) best = &it->second;
      }
      return best;
    };
    for (const char* f : {"f32", "int8"})
      for (int b : {o.batches.front(), bmax}) {
        const Timing* m = best_of({std::string("mmkit ") + f, std::string("mmkit ") + f + " (spin)"}, b);
        const Timing* ort = best_of({"onnxruntime", "onnxruntime (no spin)"}, b);
        const Timing* pt = best_of({"pytorch"}, b);
        if (!m) continue;
        std::string line = fmt("acceptance view, encode_image %s batch %d, %d threads: mmkit %.1f ms", f, b, th, m->ms.median);
        if (ort) line += fmt(", ONNX Runtime f32 %.1f ms (%.2fx)", ort->ms.median, ort->ms.median / m->ms.median);
        if (pt) line += fmt(", PyTorch %.1f ms (%.2fx)", pt->ms.median, pt->ms.median / m->ms.median);
        std::printf("%s\n", line.c_str());
        notes << "- " << line << " (each at its faster spinning setting)\n";
      }
  }

  // ---- thread scaling
  if (std::find(o.threads.begin(), o.threads.end(), 1) != o.threads.end() &&
      std::find(o.threads.begin(), o.threads.end(), 2) != o.threads.end())
    for (const auto& tower : o.towers)
      for (const auto& rt : runtimes) {
        auto a = T.find({rt, tower, 1, bmax}), b = T.find({rt, tower, 2, bmax});
        if (a == T.end() || b == T.end()) continue;
        std::string line = fmt("1 -> 2 thread scaling, %s %s batch %d: %.2fx", rt.c_str(), tower.c_str(), bmax,
                               a->second.ms.median / b->second.ms.median);
        // mmkit's spinning variant runs at 2 threads only: 1 thread has no pool to spin.
        auto sp = T.find({rt + " (spin)", tower, 2, bmax});
        if (sp != T.end())
          line += fmt(" (to the spinning pool at 2 threads: %.2fx)", a->second.ms.median / sp->second.ms.median);
        std::printf("%s\n", line.c_str());
        notes << "- " << line << "\n";
      }

  // ---- agreement
  bool ok = true;
  const int64_t E = want.embed_dim;
  for (const auto& tower : o.towers) {
    const std::vector<float>& tref = tower == "image" ? in.torch_img : in.torch_txt;
    auto f32 = emb.find({"mmkit f32", tower});
    if (f32 == emb.end()) continue;
    if (!tref.empty()) {
      CosStats c = cosines(f32->second.data(), tref.data(), bmax, E);
      std::string line = fmt("%s: mmkit f32 vs PyTorch, min cosine over %d rows %.7f", tower.c_str(), bmax, c.min_cos);
      std::printf("%s %s\n", line.c_str(), c.min_cos >= 0.9999 ? "ok" : "MISMATCH (< 0.9999)");
      notes << "- " << line << "\n";
      ok = ok && c.min_cos >= 0.9999;
      auto ortv = emb.find({"onnxruntime", tower});
      if (ortv != emb.end() && ortv->second.size() >= size_t(bmax * E)) {
        CosStats co = cosines(ortv->second.data(), tref.data(), bmax, E);
        line = fmt("%s: onnxruntime vs PyTorch, min cosine %.7f", tower.c_str(), co.min_cos);
        std::printf("%s\n", line.c_str());
        notes << "- " << line << "\n";
      }
    }
    for (const auto& f : o.formats) {
      if (f == "f32") continue;
      auto q = emb.find({"mmkit " + f, tower});
      if (q == emb.end()) continue;
      CosStats c = cosines(q->second.data(), f32->second.data(), bmax, E);
      std::string line = fmt("%s: mmkit %s vs mmkit f32, min cosine over %d rows %.6f", tower.c_str(), f.c_str(), bmax, c.min_cos);
      bool pass = f != "int8" || c.min_cos >= 0.995;
      std::printf("%s %s\n", line.c_str(), pass ? "ok" : "TOO LOW (< 0.995)");
      notes << "- " << line << "\n";
      ok = ok && pass;
    }
  }
  for (const auto& f : o.formats) {
    auto i32 = emb.find({"mmkit f32", "image"}), t32 = emb.find({"mmkit f32", "text"});
    auto iq = emb.find({"mmkit " + f, "image"}), tq = emb.find({"mmkit " + f, "text"});
    if (f == "f32" || i32 == emb.end() || t32 == emb.end() || iq == emb.end() || tq == emb.end()) continue;
    auto a = zero_shot_top1(i32->second, bmax, t32->second, bmax, E);
    auto b = zero_shot_top1(iq->second, bmax, tq->second, bmax, E);
    int agree = 0;
    for (size_t i = 0; i < a.size(); ++i) agree += a[i] == b[i];
    std::string line = fmt("zero-shot top-1 agreement, mmkit %s vs f32 (each of %d images against %d texts): %d/%d", f.c_str(),
                           bmax, bmax, agree, bmax);
    std::printf("%s\n", line.c_str());
    notes << "- " << line << "\n";
  }

  // ---- start to first embedding: process start, load (mmap), tokenizer, decode + preprocess, one
  // encode_image; runs interleaved so machine noise spreads over all of them
  std::ostringstream st_md;
  if (o.startup && file_exists(kImage)) {
    struct Startup {
      std::string name;
      std::vector<std::string> cmd;
      Env env;
      std::vector<double> wall, rss, cpu;
      size_t file_bytes = 0;
      bool ok = true;
    };
    const int th = o.threads.back();
    std::vector<Startup> st;
    auto fsize = [](const std::string& p) {
      struct stat s;
      return ::stat(p.c_str(), &s) == 0 ? size_t(s.st_size) : size_t(0);
    };
    for (const auto& f : o.formats)
      st.push_back({"mmkit embed (" + f + ")",
                    {self_dir() + "/mmkit", "embed", "--model", files[f], "--vocab", kVocab, "--image", kImage, "--json",
                     "--threads", std::to_string(th)},
                    {}, {}, {}, {}, fsize(files[f]), true});
    if (o.torch)
      st.push_back({"pytorch first-embedding",
                    {kPython, kPeer, "first-embedding", "--model", weights, "--image", kImage, "--threads", std::to_string(th)},
                    kTorchBest, {}, {}, {}, fsize(weights), true});
    std::printf("\nstart-to-first-embedding (%s, %d threads, %d runs each) ...\n", kImage.c_str(), th, o.startup_runs);
    for (int i = 0; i < o.startup_runs; ++i)
      for (auto& s : st) {
        if (!s.ok) continue;
        // A forked child's peak RSS includes this (large) process's pages until its exec, so the
        // peak comes from /usr/bin/time run in the child (itself small when it execs the command).
        std::vector<std::string> cmd = s.cmd;
        const std::string rss_file = o.dir + "/startup_rss.txt";
        const bool timed = file_exists("/usr/bin/time");
        if (timed) cmd.insert(cmd.begin(), {"/usr/bin/time", "-f", "%M %U %S", "-o", rss_file});
        std::remove(rss_file.c_str());
        ChildResult r = run_child(cmd, s.env);
        if (!r.ok || json_lines(r.out).empty()) {
          s.ok = false;
          std::printf("  %s failed\n", s.name.c_str());
          continue;
        }
        s.wall.push_back(r.wall_s);
        double kb = 0, user = 0, sys = 0;
        std::ifstream rf(rss_file);
        if (timed && (rf >> kb >> user >> sys)) {
          s.rss.push_back(kb / 1024.0);
          s.cpu.push_back(user + sys);
        } else {
          s.rss.push_back(r.peak_rss_mb);  // upper bound (see above)
          s.cpu.push_back(0);
        }
      }
    st_md << "| command | min s | median s | median CPU s | peak RSS MB | weight file MB | RSS / file |\n"
             "|---|---|---|---|---|---|---|\n";
    std::printf("%-28s %8s %9s %8s %12s %9s %10s\n", "", "min s", "median s", "CPU s", "peak RSS MB", "file MB", "RSS/file");
    for (auto& s : st) {
      if (!s.ok) continue;
      Stats w = stats_of(s.wall);
      double rss = *std::max_element(s.rss.begin(), s.rss.end()), mb = s.file_bytes / 1e6, cpu = stats_of(s.cpu).median;
      std::printf("%-28s %8.3f %9.3f %8.2f %12.0f %9.0f %10.2f\n", s.name.c_str(), w.min, w.median, cpu, rss, mb, rss / mb);
      st_md << "| " << s.name << " | " << fmt("%.3f", w.min) << " | " << fmt("%.3f", w.median) << " | " << fmt("%.2f", cpu)
            << " | " << fmt("%.0f", rss) << " | " << fmt("%.0f", mb) << " | " << fmt("%.2f", rss / mb) << " |\n";
    }
    std::printf("(wall time from fork to exit; CPU = user + system of the command; peak RSS as /usr/bin/time reports it)\n");
  }

  const std::string load_after = uptime_line();
  std::printf("\nmachine: before the run %s; after %s\n", load_before.c_str(), load_after.c_str());
  if (o.write) {
    std::ostringstream sec;
    sec << "<!-- clip_bench:begin -->\n"
        << "Command: `" << o.command << "` (" << (o.quick ? "quick mode" : "full run") << "), "
        << "GEMM backend " << ops::gemm_backend_name() << ". Machine: " << load_before << " before the run, "
        << load_after << " after (this run's own 2 threads included)" << (load_at_start >= 0.5 ? " (busy at the start: other jobs shared the 2 cores, absolute times are "
                                                       "inflated; ratios come from interleaved-in-time runs of the same "
                                                       "load only approximately)" : "") << ".\n\n"
        << md.str() << "\n" << notes.str();
    if (!st_md.str().empty()) sec << "\nStart to first embedding (`mmkit embed --image astronaut.png` vs PyTorch's script):\n\n" << st_md.str();
    sec << "<!-- clip_bench:end -->";
    std::ifstream f(o.doc);
    std::string doc((std::istreambuf_iterator<char>(f)), {});
    size_t a = doc.find("<!-- clip_bench:begin -->"), b = doc.find("<!-- clip_bench:end -->");
    if (a != std::string::npos && b != std::string::npos && b > a)
      doc = doc.substr(0, a) + sec.str() + doc.substr(b + std::strlen("<!-- clip_bench:end -->"));
    else
      doc += "\n## CLIP inference: mmkit vs PyTorch vs ONNX Runtime (bench/clip_bench)\n\n" + sec.str() + "\n";
    std::ofstream(o.doc) << doc;
    std::printf("table written to %s\n", o.doc.c_str());
  } else {
    std::printf("(docs not changed; --write-docs puts this table into docs/BENCHMARKS.md)\n");
  }
  if (!ok) {
    std::printf("FAILED: an agreement check failed (see above)\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  apply_default_wait_policy(argc, argv);
  return mmkit::bench::guarded_main("clip_bench", argc, argv, run);
}
