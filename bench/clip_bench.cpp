// CLIP ViT-B/32 encode_image, mmkit vs PyTorch side by side in one run (issue #3, acceptance 2).
//
//   build/clip_bench [--threads 2] [--batches 1,32] [--warmup 2] [--reps 20] [--reps-large 5]
//                    [--startup-runs 3] [--dir /tmp/mmkit_bench] [--no-torch] [--no-startup]
//                    [--no-mmkit-passive]
//
// 1. Weights: bench/torch_clip_bench.py make-weights writes seeded random ViT-B/32 weights (OpenAI
//    names, config in the metadata) to DIR/clip_vitb32.safetensors; reused while its config matches.
// 2. PyTorch (bench/torch_clip_bench.py time): encode_image under no_grad at each batch with
//    torch.set_num_threads(T), in three configurations: Debian's default threading,
//    OMP_WAIT_POLICY=passive, and passive with OPENBLAS_CORETYPE unset (OpenBLAS then uses its AVX-512
//    kernels; usually PyTorch's best here). Each run dumps its embeddings of one seeded N(0,1) batch;
//    the first run's dump also holds the pixels mmkit uses.
// 3. mmkit: clip_encode_image on the same pixels, T threads, grad recording off, in this process (the
//    environment's OpenMP wait policy) and in a re-executed copy of this program (--worker) under
//    OMP_WAIT_POLICY=passive. Its embeddings are compared with every PyTorch run's (cosine >= 0.9999
//    per row, or the program exits 1).
// 4. Start-to-first-embedding: wall time from fork to exit of `mmkit embed --model M --vocab V
//    --image astronaut.png --json` vs `torch_clip_bench.py first-embedding` (import torch, load the
//    same file, PIL preprocessing, encode), each in the same wait-policy variants; runs interleaved;
//    peak RSS of each child from wait4().
// Batches > 8 use --reps-large repetitions: one ViT-B/32 batch of 32 takes seconds.
// GFLOP/s counts 2 x the multiply-adds of the vision tower (patchify, q/k/v, QK^T, PV, out-proj, MLP,
// final projection); LayerNorm, softmax and activations are not counted. Ratios are against mmkit's
// best configuration at the same batch; docs/BENCHMARKS.md reports each side's best.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mmkit/autograd/graph.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/ops/gemm.h"

using namespace mmkit;

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

// ---- child processes: fork/exec without a shell, stdout captured, rusage of that child alone.
// `env` entries are set in the child; an empty value unsets the variable.
using Env = std::vector<std::pair<std::string, std::string>>;
// PyTorch's best setting here: passive OpenMP waiting, and OpenBLAS free to pick its AVX-512 kernels
// (this machine's environment pins OPENBLAS_CORETYPE=Haswell against old OpenBLAS misdetection bugs).
const Env kTorchBest = {{"OMP_WAIT_POLICY", "passive"}, {"OPENBLAS_CORETYPE", ""}, {"OPENBLAS_L2_SIZE", ""}};
struct ChildResult {
  bool ok = false;  // exited with status 0
  std::string out;  // its stdout
  double wall_s = 0;
  double peak_rss_mb = 0;
};

ChildResult run_child(const std::vector<std::string>& argv, const Env& env = {}) {
  ChildResult r;
  // The child's argv and environment are built before fork: between fork and exec a child of a
  // multi-threaded process may only call async-signal-safe functions (no malloc, no setenv).
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e, key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (auto& m : env) replaced = replaced || m.first == key;
    if (!replaced) envs.push_back(kv);
  }
  for (auto& m : env)
    if (!m.second.empty()) envs.push_back(m.first + "=" + m.second);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string exec_error = "clip_bench: cannot execute " + argv[0] + "\n";
  int fd[2];
  if (::pipe(fd) != 0) return r;
  std::fflush(stdout);
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd[0]);
    ::close(fd[1]);
    return r;
  }
  if (pid == 0) {
    ::dup2(fd[1], 1);
    ::close(fd[0]);
    ::close(fd[1]);
    ::execve(args[0], args.data(), envp.data());
    ssize_t ignored = ::write(2, exec_error.data(), exec_error.size());
    (void)ignored;
    ::_exit(127);
  }
  ::close(fd[1]);
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) r.out.append(buf, size_t(n));
  ::close(fd[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  r.wall_s = seconds_since(t0);
  r.peak_rss_mb = ru.ru_maxrss / 1024.0;  // kB on Linux
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream s(out);
  for (std::string line; std::getline(s, line);) {
    if (line.empty() || line[0] != '{') continue;
    try {
      v.push_back(nlohmann::json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return v;
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, size_t(n));
  return p.substr(0, p.find_last_of('/'));
}

ClipConfig vit_b_32() { return ClipConfig{}; }  // ClipConfig's defaults are OpenAI ViT-B/32

bool same_config(const ClipConfig& a, const ClipConfig& b) {
  return a.embed_dim == b.embed_dim && a.image_resolution == b.image_resolution &&
         a.vision_patch_size == b.vision_patch_size && a.vision_width == b.vision_width &&
         a.vision_layers == b.vision_layers && a.vision_heads == b.vision_heads &&
         a.context_length == b.context_length && a.vocab_size == b.vocab_size &&
         a.transformer_width == b.transformer_width && a.transformer_layers == b.transformer_layers &&
         a.transformer_heads == b.transformer_heads && a.activation == b.activation;
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
  cfg.erase("activation");  // the Python side only knows OpenAI's QuickGELU CLIP
  std::printf("weights: creating %s ...\n", path.c_str());
  std::remove(check_path.c_str());  // PyTorch's embeddings of the old weights
  ChildResult r = run_child({kPython, kPeer, "make-weights", "--out", path, "--seed", "0",
                             "--config", cfg.dump()});
  MMKIT_CHECK(r.ok, "creating the benchmark weights failed: ", kPython, " ", kPeer,
              " make-weights (is python3-torch installed?)");
  std::printf("weights: created in %.1f s\n", r.wall_s);
}

// 2 x multiply-adds of the vision tower for one image.
double vision_gflop(const ClipConfig& c) {
  const double R = double(c.image_resolution), p = double(c.vision_patch_size);
  const double P = (R / p) * (R / p), N = P + 1, W = double(c.vision_width), E = double(c.embed_dim);
  const double patch = P * 3 * p * p * W;
  const double layer = N * 3 * W * W      // q, k, v
                       + 2 * N * N * W    // QK^T and PV over all heads
                       + N * W * W        // out-proj
                       + 2 * N * W * 4 * W;  // MLP c_fc + c_proj
  return 2 * (patch + double(c.vision_layers) * layer + W * E) / 1e9;
}

struct BatchResult {
  int batch = 0, reps = 0;
  Stats ms;
  double arena_mb = 0;  // mmkit: peak of the forward's activation arena
};

// Times clip_encode_image on images[:B]; `first` receives the first call's embeddings [B, E].
BatchResult time_mmkit(Clip& clip, const Tensor& images, int B, int warmup, int reps,
                       std::vector<float>* first) {
  const int64_t R = clip.cfg.image_resolution, E = clip.cfg.embed_dim;
  Tensor x = Tensor::view(images.raw(), Shape{B, 3, R, R}, DType::f32);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  std::vector<double> ms;
  for (int r = 0; r < warmup + reps; ++r) {
    auto t0 = Clock::now();
    g.reset();
    Var e = clip_encode_image(g, clip, g.constant(x));
    double dt = seconds_since(t0) * 1e3;
    if (r == 0 && first) first->assign(g.data(e), g.data(e) + B * E);
    if (r >= warmup) ms.push_back(dt);
  }
  return {B, reps, stats_of(ms), arena.peak() / 1e6};
}

struct Agreement {
  double min_cos = 1, max_abs = 0;
  int worst_row = 0;
};
Agreement compare_rows(const float* a, const float* b, int64_t rows, int64_t E) {
  Agreement r;
  for (int64_t i = 0; i < rows; ++i) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t e = 0; e < E; ++e) {
      ab += double(a[i * E + e]) * b[i * E + e];
      aa += double(a[i * E + e]) * a[i * E + e];
      bb += double(b[i * E + e]) * b[i * E + e];
      r.max_abs = std::max(r.max_abs, double(std::fabs(a[i * E + e] - b[i * E + e])));
    }
    double c = ab / std::sqrt(aa * bb + 1e-300);
    if (c < r.min_cos) r.min_cos = c, r.worst_row = int(i);
  }
  return r;
}

struct Peer {
  std::string name;
  std::map<int, BatchResult> res;
  double peak_rss_mb = 0;
  bool ok = false;
  std::vector<float> emb;  // PyTorch peers: embeddings [max batch, E] of the shared input batch
};

std::vector<int> parse_batches(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    int b = std::atoi(t.c_str());
    MMKIT_CHECK(b > 0, "--batches: expected positive integers separated by commas, got '", s, "'");
    v.push_back(b);
  }
  MMKIT_CHECK(!v.empty(), "--batches is empty");
  return v;
}

// images [bmax, 3, R, R] for mmkit: PyTorch's dumped input batch when there is one (then `torch_emb`
// receives its embeddings [bmax, E]), else seeded N(0, 1) pixels of our own.
Tensor load_inputs(const std::string& check, int bmax, int64_t R, int64_t E, std::vector<float>* torch_emb) {
  Tensor images = Tensor::empty(Shape{bmax, 3, R, R});
  torch_emb->clear();
  if (!file_exists(check)) {
    Rng rng(1);
    for (int64_t i = 0; i < images.numel(); ++i) images.f32()[i] = rng.normal();
    return images;
  }
  // Written by this run's first PyTorch peer, or by an earlier run on the same weights (the file is
  // deleted whenever the weights are regenerated); it may hold more images than this run needs.
  auto f = io::SafetensorsFile::open(check);
  const io::TensorView& im = f.get("images");
  const io::TensorView& em = f.get("embeddings");
  MMKIT_CHECK(im.dtype == DType::f32 && im.shape.size() == 4 && im.shape[0] >= bmax && im.shape[1] == 3 &&
                  im.shape[2] == R && im.shape[3] == R,
              check, ": 'images' has shape ", Shape(im.shape).str(), ", expected [>=", bmax, ", 3, ", R,
              ", ", R, "]");
  MMKIT_CHECK(em.dtype == DType::f32 && em.shape == std::vector<int64_t>({im.shape[0], E}), check,
              ": 'embeddings' has shape ", Shape(em.shape).str(), ", expected [", im.shape[0], ", ", E, "]");
  std::memcpy(images.raw(), im.data, images.nbytes());
  torch_emb->assign(static_cast<const float*>(em.data), static_cast<const float*>(em.data) + bmax * E);
  return images;
}

void parse_batch_lines(const ChildResult& r, size_t want, Peer* p) {
  for (auto& j : json_lines(r.out))
    if (j.contains("batch") && j.contains("ms_min") && j.contains("ms_median") && j.contains("reps"))
      p->res[j["batch"].get<int>()] = {j["batch"].get<int>(), j["reps"].get<int>(),
                                       {j["ms_min"].get<double>(), j["ms_median"].get<double>()}};
  p->ok = r.ok && p->res.size() == want;
  p->peak_rss_mb = r.peak_rss_mb;
  if (!p->ok) std::printf("  %s failed (exit status or output)\n", p->name.c_str());
}

struct Options {
  int threads = 2, warmup = 2, reps = 20, reps_large = 5, startup_runs = 3;
  std::string batches = "1,32", dir = "/tmp/mmkit_bench";
  bool torch = true, startup = true, mmkit_passive = true;
  bool worker = false;  // internal: time mmkit only, print JSON lines (run under another OMP policy)
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      MMKIT_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--threads") o.threads = std::atoi(next().c_str());
    else if (a == "--batches") o.batches = next();
    else if (a == "--warmup") o.warmup = std::atoi(next().c_str());
    else if (a == "--reps") o.reps = std::atoi(next().c_str());
    else if (a == "--reps-large") o.reps_large = std::atoi(next().c_str());
    else if (a == "--startup-runs") o.startup_runs = std::atoi(next().c_str());
    else if (a == "--dir") o.dir = next();
    else if (a == "--no-torch") o.torch = false;
    else if (a == "--no-startup") o.startup = false;
    else if (a == "--no-mmkit-passive") o.mmkit_passive = false;
    else if (a == "--worker") o.worker = true;
    else fail("unknown argument ", a, " (see the comment at the top of bench/clip_bench.cpp)");
  }
  MMKIT_CHECK(o.threads >= 1 && o.warmup >= 1 && o.reps >= 1 && o.reps_large >= 1 && o.startup_runs >= 1,
              "--threads, --warmup, --reps, --reps-large and --startup-runs must be >= 1");
  return o;
}

// The OpenMP wait policy this process runs under, for the table's labels. core/parallel.cpp sets
// GOMP_SPINCOUNT=3000000 from .preinit_array unless the user chose a policy.
std::string own_policy(bool* set_by_mmkit) {
  const char* w = std::getenv("OMP_WAIT_POLICY");
  const char* s = std::getenv("GOMP_SPINCOUNT");
  *set_by_mmkit = !w && s && std::strcmp(s, "3000000") == 0;
  if (*set_by_mmkit) return "GOMP_SPINCOUNT=3000000, mmkit's default";
  if (w) return std::string("OMP_WAIT_POLICY=") + w;
  if (s) return std::string("GOMP_SPINCOUNT=") + s;
  return "libgomp default";
}

int run(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  bool spin_set_by_mmkit = false;
  const std::string policy = own_policy(&spin_set_by_mmkit);
  // libgomp has read it already; children (PyTorch above all) must start from the user's environment.
  if (spin_set_by_mmkit) ::unsetenv("GOMP_SPINCOUNT");
  const std::vector<int> batches = parse_batches(o.batches);
  const int bmax = *std::max_element(batches.begin(), batches.end());
  auto reps_for = [&](int b) { return b > 8 ? o.reps_large : o.reps; };
  ::mkdir(o.dir.c_str(), 0755);
  const std::string weights = o.dir + "/clip_vitb32.safetensors";
  const std::string check = o.dir + "/clip_vitb32_check.safetensors";
  const std::string self = self_dir() + "/clip_bench";
  set_num_threads(o.threads);
  const ClipConfig want = vit_b_32();
  const double gflop = vision_gflop(want);

  if (o.worker) {
    std::unique_ptr<Clip> clip = load_clip(weights);
    std::vector<float> unused;
    Tensor images = load_inputs(check, bmax, want.image_resolution, want.embed_dim, &unused);
    for (int b : batches) {
      BatchResult r = time_mmkit(*clip, images, b, o.warmup, reps_for(b), nullptr);
      std::printf("{\"batch\":%d,\"reps\":%d,\"ms_min\":%.3f,\"ms_median\":%.3f}\n", b, r.reps, r.ms.min,
                  r.ms.median);
    }
    return 0;
  }

  std::printf("CLIP ViT-B/32 encode_image: %d threads, GEMM %s, vision tower %.2f GFLOP per image\n",
              o.threads, ops::gemm_backend_name(), gflop);
  ensure_weights(weights, check, want);
  const std::vector<std::string> common = {"--batches", o.batches, "--threads", std::to_string(o.threads),
                                           "--warmup", std::to_string(o.warmup), "--reps",
                                           std::to_string(o.reps), "--reps-large", std::to_string(o.reps_large)};

  // ---- PyTorch peers (first, so the first one's dump gives mmkit the same input pixels).
  std::vector<Peer> torch_peers;
  if (o.torch) {
    const std::pair<const char*, Env> cfgs[] = {
        {"pytorch (default threading)", {}},
        {"pytorch (OMP_WAIT_POLICY=passive)", {{"OMP_WAIT_POLICY", "passive"}}},
        {"pytorch (passive, OpenBLAS autodetect)", kTorchBest}};
    std::remove(check.c_str());
    for (const auto& c : cfgs) {
      Peer p{c.first, {}, 0, false, {}};
      // Every peer dumps its embeddings (all use the same seeded pixels), so each configuration's
      // numbers are checked against mmkit; the first one's file also gives mmkit its input.
      const std::string dump = torch_peers.empty() ? check : check + ".peer";
      std::vector<std::string> cmd = {kPython, kPeer, "time", "--model", weights, "--seed", "1", "--dump", dump};
      cmd.insert(cmd.end(), common.begin(), common.end());
      std::printf("running %s ...\n", p.name.c_str());
      parse_batch_lines(run_child(cmd, c.second), batches.size(), &p);
      if (p.ok && file_exists(dump)) {
        auto f = io::SafetensorsFile::open(dump);
        p.emb = io::to_f32(f.get("embeddings"));
      }
      if (dump != check) std::remove(dump.c_str());
      torch_peers.push_back(p);
    }
  }

  // ---- mmkit, in this process (the environment's wait policy) and re-executed under passive waiting
  std::vector<Peer> mm_peers;
  auto t_load = Clock::now();
  std::unique_ptr<Clip> clip = load_clip(weights);
  const double load_s = seconds_since(t_load);
  const int64_t E = clip->cfg.embed_dim;
  std::vector<float> torch_emb;
  Tensor images = load_inputs(check, bmax, clip->cfg.image_resolution, E, &torch_emb);
  std::printf("running mmkit (%s) ... (load_clip %.0f ms)\n", policy.c_str(), load_s * 1e3);
  Peer own{"mmkit (" + policy + ")", {}, 0, true, {}};
  std::map<int, std::vector<float>> mm_emb;
  for (int b : batches) own.res[b] = time_mmkit(*clip, images, b, o.warmup, reps_for(b), &mm_emb[b]);
  struct rusage self_ru {};
  ::getrusage(RUSAGE_SELF, &self_ru);
  own.peak_rss_mb = self_ru.ru_maxrss / 1024.0;
  mm_peers.push_back(own);
  if (o.mmkit_passive && policy != "OMP_WAIT_POLICY=passive") {
    Peer p{"mmkit (OMP_WAIT_POLICY=passive)", {}, 0, false, {}};
    std::vector<std::string> cmd = {self, "--worker", "--dir", o.dir};
    cmd.insert(cmd.end(), common.begin(), common.end());
    std::printf("running %s ...\n", p.name.c_str());
    parse_batch_lines(run_child(cmd, {{"OMP_WAIT_POLICY", "passive"}}), batches.size(), &p);
    mm_peers.push_back(p);
  }

  // ---- table; ratios against mmkit's best configuration at that batch (lowest median)
  auto best_of = [](const std::vector<Peer>& v, int b) {
    const Peer* best = nullptr;
    for (auto& p : v)
      if (p.ok && (!best || p.res.at(b).ms.median < best->res.at(b).ms.median)) best = &p;
    return best;
  };
  std::printf("\n%-6s %-45s %5s %9s %10s %9s %8s %10s\n", "batch", "", "reps", "min ms", "median ms",
              "images/s", "GFLOP/s", "/ best mm");
  for (int b : batches) {
    const Peer* bm = best_of(mm_peers, b);
    auto row = [&](const Peer& p) {
      if (!p.ok) return;
      const BatchResult& r = p.res.at(b);
      std::printf("%-6d %-45s %5d %9.1f %10.1f %9.2f %8.1f", b, p.name.c_str(), r.reps, r.ms.min,
                  r.ms.median, b * 1e3 / r.ms.median, b * gflop * 1e3 / r.ms.median);
      if (bm) std::printf(" %9.2fx", r.ms.median / bm->res.at(b).ms.median);
      std::printf("\n");
    };
    for (auto& p : mm_peers) row(p);
    for (auto& p : torch_peers) row(p);
  }
  std::printf("(/ best mm = median / the best mmkit median at that batch: > 1 means slower than mmkit's best;\n"
              " GFLOP/s = 2 x vision-tower multiply-adds / median)\n");
  // Each side in its best configuration, as docs/BENCHMARKS.md reports it.
  for (int b : batches) {
    const Peer *bm = best_of(mm_peers, b), *bt = best_of(torch_peers, b);
    if (bm && bt)
      std::printf("batch %d, best vs best: %s %.1f ms, %s %.1f ms -> mmkit %.2fx faster\n", b,
                  bm->name.c_str(), bm->res.at(b).ms.median, bt->name.c_str(), bt->res.at(b).ms.median,
                  bt->res.at(b).ms.median / bm->res.at(b).ms.median);
  }
  std::printf("peak RSS:");
  for (auto* v : {&mm_peers, &torch_peers})
    for (auto& p : *v)
      if (p.ok) std::printf(" %s %.0f MB;", p.name.c_str(), p.peak_rss_mb);
  std::printf("\nmmkit activation arena peak:");
  for (int b : batches) std::printf(" batch %d %.0f MB;", b, own.res[b].arena_mb);
  std::printf("\n(mmkit: weights mmapped, only the vision tower is touched; inference keeps every activation\n"
              " of the pass in the arena; load_clip first fills a full random model, ~605 MB, then binds the file)\n");

  // ---- parity: same weights, same pixels.
  bool parity_ok = true;
  if (!torch_emb.empty()) {
    std::printf("parity (same weights, same pixels; rows of the first encode_image call at each batch):\n");
    std::vector<std::pair<std::string, const std::vector<float>*>> refs;
    for (auto& p : torch_peers)
      if (!p.emb.empty()) refs.push_back({p.name, &p.emb});
    if (refs.empty()) refs.push_back({"pytorch (dump of an earlier run)", &torch_emb});
    for (int b : batches)
      for (auto& r : refs) {
        if (r.second->size() < size_t(b * E)) continue;
        Agreement a = compare_rows(mm_emb[b].data(), r.second->data(), b, E);
        std::printf("  batch %-3d mmkit vs %-40s min cosine %.7f (row %d), max |diff| %.2e  %s\n", b,
                    r.first.c_str(), a.min_cos, a.worst_row, a.max_abs, a.min_cos >= 0.9999 ? "ok" : "MISMATCH");
        parity_ok = parity_ok && a.min_cos >= 0.9999;
      }
  } else {
    std::printf("parity: skipped (no PyTorch run)\n");
  }

  // ---- start-to-first-embedding; runs interleaved so machine noise spreads over all peers
  if (o.startup) {
    struct Startup {
      std::string name;
      std::vector<std::string> cmd;
      Env env;
      std::vector<double> wall, rss;
      std::vector<float> emb;
      bool ok = true;
    };
    std::vector<std::string> cli = {self_dir() + "/mmkit", "embed", "--model", weights, "--vocab", kVocab,
                                    "--image", kImage, "--json", "--threads", std::to_string(o.threads)};
    std::vector<Startup> st;
    st.push_back({"mmkit embed (" + policy + ")", cli, {}, {}, {}, {}, true});
    if (o.mmkit_passive && policy != "OMP_WAIT_POLICY=passive")
      st.push_back({"mmkit embed (OMP_WAIT_POLICY=passive)", cli, {{"OMP_WAIT_POLICY", "passive"}}, {}, {}, {}, true});
    if (o.torch) {
      std::vector<std::string> py = {kPython, kPeer, "first-embedding", "--model", weights, "--image",
                                     kImage, "--threads", std::to_string(o.threads)};
      st.push_back({"pytorch (default threading)", py, {}, {}, {}, {}, true});
      st.push_back({"pytorch (OMP_WAIT_POLICY=passive)", py, {{"OMP_WAIT_POLICY", "passive"}}, {}, {}, {}, true});
      st.push_back({"pytorch (passive, OpenBLAS autodetect)", py, kTorchBest, {}, {}, {}, true});
    }
    std::printf("\nstart-to-first-embedding (%s, %d runs each) ...\n", kImage.c_str(), o.startup_runs);
    for (int i = 0; i < o.startup_runs; ++i) {
      for (auto& s : st) {
        if (!s.ok) continue;
        ChildResult r = run_child(s.cmd, s.env);
        auto js = json_lines(r.out);
        if (!r.ok || js.empty()) {
          s.ok = false;
          std::printf("  %s failed\n", s.name.c_str());
          continue;
        }
        s.wall.push_back(r.wall_s);
        s.rss.push_back(r.peak_rss_mb);
        const nlohmann::json& j = js.back();
        if (j.contains("image_embeddings")) s.emb = j["image_embeddings"][0].get<std::vector<float>>();
        if (j.contains("embedding")) s.emb = j["embedding"].get<std::vector<float>>();
      }
    }
    const Startup* best = nullptr;
    for (auto& s : st)
      if (s.ok && s.name.rfind("mmkit", 0) == 0 && (!best || stats_of(s.wall).median < stats_of(best->wall).median))
        best = &s;
    std::printf("%-45s %8s %9s %12s %10s\n", "", "min s", "median s", "peak RSS MB", "/ best mm");
    for (auto& s : st) {
      if (!s.ok) continue;
      Stats w = stats_of(s.wall);
      std::printf("%-45s %8.2f %9.2f %12.0f", s.name.c_str(), w.min, w.median,
                  *std::max_element(s.rss.begin(), s.rss.end()));
      if (best) std::printf(" %9.2fx", w.median / stats_of(best->wall).median);
      std::printf("\n");
    }
    std::printf("(wall time from fork to exit: process start, imports, weight loading, tokenizer (mmkit),\n"
                " image decode + preprocessing, one encode_image; / best mm = median / best mmkit median)\n");
    const Startup* py = nullptr;
    for (auto& s : st)
      if (s.ok && s.name.rfind("pytorch", 0) == 0 && !py) py = &s;
    if (st[0].ok && py && st[0].emb.size() == py->emb.size() && !st[0].emb.empty()) {
      Agreement a = compare_rows(st[0].emb.data(), py->emb.data(), 1, int64_t(st[0].emb.size()));
      std::printf("astronaut.png embedding, mmkit CLI vs PyTorch (incl. each side's preprocessing): "
                  "cosine %.7f, max |diff| %.2e\n", a.min_cos, a.max_abs);
    }
  }
  if (!parity_ok) {
    std::printf("FAILED: mmkit and PyTorch embeddings disagree\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "clip_bench: error: %s\n", e.what());
    return 1;
  }
}
