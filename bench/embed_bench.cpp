// End to end: a folder of photos -> a file of CLIP embeddings, mmkit against what a PyTorch user
// writes and against ONNX Runtime fed by the same PIL pipeline, in one run, on this machine's cores.
//
//   build/embed_bench                         # full run; photos and weights made if missing
//   build/embed_bench --quick                 # fewer peer configurations, one run each
//   build/embed_bench --photos DIR --threads 2 --runs 3 [--no-torch] [--no-ort]
//
// Rows (ViT-B/32, random weights, seeded; 256 mixed JPEG/PNG photos of 320-1024 px from
// tools/make_photo_set.py):
//   tower alone     ClipEngine::encode_image at batch 32 on random pixels, in this process: the
//                   ceiling an end-to-end run approaches (images/s), f32 and int8
//   split           embed_folder in this process with OpenMP threads x decode threads varied
//                   (2x1, 1x1, 2x2): how decoding and the GEMMs best share the cores
//   mmkit embed     `build/mmkit embed --model W --images DIR --out E.npy --threads T`, wall time of
//                   the process from start to exit (the .npy written), f32 and int8
//   PyTorch         bench/torch_embed_folder.py: DataLoader + PIL + openai/CLIP transform in
//                   0/1/2 workers, torch threads T, OMP_WAIT_POLICY=passive (PyTorch's best here);
//                   interpreter start to np.save done
//   ORT + PIL       bench/torch_embed_folder.py --feed-ort (the same DataLoader) piped into
//                   bench/ort/ort_embed_stream.js (ONNX export of the same weights), spinning or not
// Ratios use each peer's best configuration. The ONNX model comes from bench/torch_clip_onnx.py.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_child.h"
#include "mmkit/core/error.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_engine.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/infer/embed_folder.h"
#include "mmkit/infer/quantize.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"

using namespace mmkit;
using mmkit::bench::Env;
using mmkit::bench::run_child;
using mmkit::bench::file_exists;
using mmkit::bench::self_dir;

namespace {

const std::string kSrc = MMKIT_SOURCE_DIR_STR;
const std::string kPython = "/usr/bin/python3";
using Clock = std::chrono::steady_clock;

struct Row {
  std::string name, config;
  double best_ips = 0, median_ips = 0;  // images per second (best and median run)
  int runs = 0;
};

Row summarize(std::string name, std::string config, std::vector<double> ips) {
  Row r{std::move(name), std::move(config)};
  if (ips.empty()) return r;
  std::sort(ips.begin(), ips.end());
  r.best_ips = ips.back();
  r.median_ips = ips[ips.size() / 2];
  r.runs = int(ips.size());
  return r;
}

int run(int argc, char** argv) {
  std::string dir = "/tmp/mmkit_bench/e2e", photos = "/tmp/mmkit_bench/photos";
  int threads = 2, runs = 3;
  bool quick = false, torch = true, ort = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MMKIT_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--dir") dir = next();
    else if (a == "--photos") photos = next();
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--runs") runs = std::max(1, std::stoi(next()));
    else if (a == "--quick") quick = true;
    else if (a == "--no-torch") torch = false;
    else if (a == "--no-ort") ort = false;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: embed_bench [--photos DIR] [--dir D] [--threads T] [--runs N] [--quick] [--no-torch] [--no-ort]\n");
      return 0;
    } else fail("unknown option ", a);
  }
  if (quick) runs = 1;
  ::mkdir("/tmp/mmkit_bench", 0755);
  ::mkdir(dir.c_str(), 0755);
  if (!file_exists(photos) && !run_child({kPython, kSrc + "/tools/make_photo_set.py", photos}).ok)
    fail("cannot make the photo set (tools/make_photo_set.py needs python3-skimage)");
  const size_t n_photos = list_image_files(photos).size();
  const std::string w32 = dir + "/vitb32_f32.safetensors", w8 = dir + "/vitb32_int8.safetensors";
  if (!file_exists(w32)) {
    std::printf("writing random ViT-B/32 weights ...\n");
    ClipConfig cfg;
    Clip m;
    m.init(cfg, 7);
    io::save_parameters(w32, m.parameters(), {{"config", cfg.to_json()}});
  }
  if (!file_exists(w8)) infer::quantize_clip(w32, w8, "int8");
  std::printf("# embed_bench: %zu photos -> embeddings, ViT-B/32, %d threads\n\n%s\n", n_photos, threads,
              mmkit::bench::load_average().c_str());
  std::fflush(stdout);
  std::vector<Row> rows;
  std::map<std::string, double> best;  // key -> best images/s

  // Tower alone, batch 32.
  set_num_threads(threads);
  for (const auto& [fmt, path] : {std::pair{std::string("f32"), w32}, std::pair{std::string("int8"), w8}}) {
    auto e = infer::ClipEngine::open(path);
    const int B = 32;
    std::vector<float> x(size_t(B) * 3 * 224 * 224), out(size_t(B) * 512);
    Rng rng(3);
    for (float& v : x) v = float(int64_t(rng.next_u64() % 2001) - 1000) / 500.f;
    e->encode_image(x.data(), B, out.data());  // packs the weights
    e->encode_image(x.data(), B, out.data());
    std::vector<double> ips;
    for (int r = 0; r < std::max(3, runs); ++r) {
      const auto t0 = Clock::now();
      e->encode_image(x.data(), B, out.data());
      ips.push_back(B / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    rows.push_back(summarize("tower alone " + fmt, "batch 32", ips));
    best["tower " + fmt] = rows.back().best_ips;
    std::printf("tower %s: %.1f images/s\n", fmt.c_str(), rows.back().best_ips);
    std::fflush(stdout);
  }

  // Split of the cores between OpenMP (GEMMs) and decoding, in process (embed_folder).
  {
    auto r = ClipRunner::open(w32);
    std::vector<std::pair<int, int>> splits = {{threads, 1}, {std::max(1, threads - 1), 1}, {threads, threads}};
    if (quick) splits.resize(2);
    for (auto [omp, dec] : splits) {
      set_num_threads(omp);
      std::vector<double> ips;
      for (int k = 0; k < runs; ++k) {
        const auto t0 = Clock::now();
        embed_folder(r, photos, dir + "/split.npy", true, 32, dec);
        ips.push_back(double(n_photos) / std::chrono::duration<double>(Clock::now() - t0).count());
      }
      rows.push_back(summarize("split (in process)", std::to_string(omp) + " OpenMP x " + std::to_string(dec) + " decode", ips));
      std::printf("split %d x %d: %.1f images/s\n", omp, dec, rows.back().best_ips);
      std::fflush(stdout);
    }
    set_num_threads(threads);
  }

  // mmkit embed, end to end.
  const std::string cli = self_dir() + "/mmkit";
  for (const auto& [fmt, path] : {std::pair{std::string("f32"), w32}, std::pair{std::string("int8"), w8}}) {
    std::vector<double> ips;
    for (int k = 0; k < runs; ++k) {
      const auto c = run_child({cli, "embed", "--model", path, "--images", photos, "--out", dir + "/mmkit_" + fmt + ".npy",
                                "--threads", std::to_string(threads)});
      if (c.ok) ips.push_back(double(n_photos) / c.wall_s);
      else std::printf("mmkit embed %s failed\n", fmt.c_str());
    }
    rows.push_back(summarize("mmkit embed --images " + fmt, "default policy, --threads " + std::to_string(threads), ips));
    best["mmkit " + fmt] = rows.back().best_ips;
    std::printf("mmkit %s: %.1f images/s\n", fmt.c_str(), rows.back().best_ips);
    std::fflush(stdout);
  }

  const Env torch_env = {{"OMP_WAIT_POLICY", "passive"}, {"OPENBLAS_CORETYPE", ""}, {"OPENBLAS_L2_SIZE", ""}};
  if (torch) {
    std::vector<std::pair<int, int>> cfgs = {{0, threads}, {1, threads}, {2, threads}, {1, 1}};
    if (quick) cfgs = {{1, threads}, {2, threads}};
    for (auto [workers, th] : cfgs) {
      std::vector<double> ips;
      for (int k = 0; k < runs; ++k) {
        const auto c = run_child({kPython, kSrc + "/bench/torch_embed_folder.py", "--model", w32, "--images", photos, "--out",
                                  dir + "/torch.npy", "--workers", std::to_string(workers), "--threads", std::to_string(th)},
                                 torch_env);
        if (c.ok) ips.push_back(double(n_photos) / c.wall_s);
        else std::printf("PyTorch (workers %d) failed\n", workers);
      }
      rows.push_back(summarize("PyTorch DataLoader + PIL", std::to_string(workers) + " workers, " + std::to_string(th) + " threads", ips));
      best["torch"] = std::max(best["torch"], rows.back().best_ips);
      std::printf("torch %d workers %d threads: %.1f images/s\n", workers, th, rows.back().best_ips);
      std::fflush(stdout);
    }
  }
  if (ort) {
    const std::string onnx = dir + "/onnx/clip_image.onnx";
    ::mkdir((dir + "/onnx").c_str(), 0755);  // torch_clip_onnx.py writes into an existing folder
    if (!file_exists(onnx))
      run_child({kPython, kSrc + "/bench/torch_clip_onnx.py", "--model", w32, "--out-dir", dir + "/onnx"});
    const std::string node_mod = kSrc + "/bench/ort/node_modules/onnxruntime-node";
    if (!file_exists(onnx) || !file_exists(node_mod)) {
      std::printf("ORT peer skipped: %s\n", !file_exists(onnx) ? "ONNX export failed" :
                  "bench/ort/node_modules missing (MMKIT_BENCH=1 scripts/setup.sh)");
    } else {
      std::vector<std::pair<int, int>> cfgs = {{1, 1}, {2, 1}, {1, 0}, {2, 0}};  // workers, spin
      if (quick) cfgs = {{1, 1}, {2, 0}};
      for (auto [workers, spin] : cfgs) {
        const std::string cmd = kPython + " " + kSrc + "/bench/torch_embed_folder.py --images " + photos +
                                " --feed-ort --threads 1 --workers " + std::to_string(workers) + " | node " + kSrc +
                                "/bench/ort/ort_embed_stream.js --model " + onnx + " --out " + dir + "/ort.f32 --threads " +
                                std::to_string(threads) + " --spin " + std::to_string(spin);
        std::vector<double> ips;
        for (int k = 0; k < runs; ++k) {
          const auto c = run_child({"/bin/bash", "-o", "pipefail", "-c", cmd}, torch_env);  // a failing feeder fails the run
          if (c.ok) ips.push_back(double(n_photos) / c.wall_s);
          else std::printf("ORT + PIL (workers %d, spin %d) failed\n", workers, spin);
        }
        rows.push_back(summarize("ORT fed by PIL DataLoader", std::to_string(workers) + " workers, spin " + std::to_string(spin), ips));
        best["ort"] = std::max(best["ort"], rows.back().best_ips);
        std::printf("ort %d workers spin %d: %.1f images/s\n", workers, spin, rows.back().best_ips);
        std::fflush(stdout);
      }
    }
  }

  std::printf("\n| what | configuration | images/s best | median | runs |\n|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %s | %.1f | %.1f | %d |\n", r.name.c_str(), r.config.c_str(), r.best_ips, r.median_ips, r.runs);
  std::printf("\n| ratio (best runs) | f32 | int8 | target |\n|---|---|---|---|\n");
  auto ratio = [&](const std::string& a, const std::string& b) { return best[b] > 0 ? best[a] / best[b] : 0.0; };
  std::printf("| mmkit embed / best PyTorch | %.2fx | %.2fx | >= 2.0x |\n", ratio("mmkit f32", "torch"), ratio("mmkit int8", "torch"));
  std::printf("| mmkit embed / best ORT + PIL | %.2fx | %.2fx | >= 1.5x |\n", ratio("mmkit f32", "ort"), ratio("mmkit int8", "ort"));
  std::printf("| mmkit embed / its tower alone at batch 32 | %.0f%% | %.0f%% | >= 85%% |\n", 100 * ratio("mmkit f32", "tower f32"),
              100 * ratio("mmkit int8", "tower int8"));
  std::printf("\n(PyTorch and ORT run f32 weights in both columns.)\n%s\n", mmkit::bench::load_average().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  apply_default_wait_policy(argc, argv);
  return mmkit::bench::guarded_main("embed_bench", argc, argv, run);
}
