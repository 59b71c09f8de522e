// Decode + preprocess benchmark: image files -> CLIP's 224x224 input, mmkit against Pillow (the
// openai/CLIP transform a PyTorch user runs, bench/pil_preprocess.py), in one run, one thread.
//
//   build/image_bench                    # makes the photos if missing, prints a markdown report
//   build/image_bench --photos DIR --jpeg FILE.jpg --reps 50 --no-pil
//
// 1. Latency of one 640x480 JPEG (tools/make_photo_set.py --one-640x480) from memory to the
//    normalised float tensor: decode, preprocess, total; the preprocessing once per resampling
//    kernel set (scalar reference, AVX2, AVX-512). libjpeg-turbo's decode alone is the floor
//    (the same library Pillow calls, with the same settings).
// 2. Parity on the photo set (tools/make_photo_set.py, 256 JPEG/PNG photos of 320-1024 px): every
//    image's 224x224x3 bytes against Pillow's; the program fails (exit 1) on any difference.
// 3. Throughput over the photo set: files read, decoded and preprocessed in order, images/s.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_child.h"
#include "mmkit/core/error.h"
#include "mmkit/core/parallel.h"
#include "mmkit/image/image.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/image/resample_kernels.h"
#include "mmkit/infer/embed_folder.h"

using namespace mmkit;
using mmkit::bench::run_child;
using mmkit::bench::file_exists;

namespace {

const std::string kSrc = MMKIT_SOURCE_DIR_STR;
const std::string kPython = "/usr/bin/python3";
using Clock = std::chrono::steady_clock;

struct Stats {
  double min = 0, median = 0;
};

template <class F>
Stats time_ms(int warmup, int reps, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    v.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f.good(), "cannot read ", path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

int run(int argc, char** argv) {
  std::string photos = "/tmp/mmkit_bench/photos", jpeg = "/tmp/mmkit_bench/photo_640x480.jpg";
  int reps = 50;
  bool pil = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MMKIT_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--photos") photos = next();
    else if (a == "--jpeg") jpeg = next();
    else if (a == "--reps") reps = std::max(3, std::stoi(next()));
    else if (a == "--no-pil") pil = false;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: image_bench [--photos DIR] [--jpeg FILE] [--reps N] [--no-pil]\n");
      return 0;
    } else fail("unknown option ", a);
  }
  ::mkdir("/tmp/mmkit_bench", 0755);
  if (!file_exists(photos) && !run_child({kPython, kSrc + "/tools/make_photo_set.py", photos}).ok)
    fail("cannot make the photo set (tools/make_photo_set.py needs python3-skimage)");
  if (!file_exists(jpeg) && !run_child({kPython, kSrc + "/tools/make_photo_set.py", "--one-640x480", jpeg}).ok)
    fail("cannot make ", jpeg);
  set_num_threads(1);
  const ResampleIsa best = resample_isa();
  std::printf("# image_bench: decode + preprocess to CLIP's 224x224 input, one thread\n\n");
  std::printf("%s; resampling kernels: %s\n\n", mmkit::bench::load_average().c_str(), resample_isa_name(best));

  // 1. One 640x480 JPEG.
  const std::vector<uint8_t> bytes = read_bytes(jpeg);
  const PreprocessConfig cfg = preprocess_preset("clip", 224);
  std::vector<float> x(size_t(3) * 224 * 224);
  Image img;
  const Stats dec = time_ms(3, reps, [&] { img = decode_image_memory(bytes.data(), bytes.size(), jpeg); });
  std::printf("| 640x480 JPEG -> [3, 224, 224] | min ms | median ms |\n|---|---|---|\n");
  std::printf("| decode (libjpeg-turbo, ISLOW, fancy upsampling: the floor) | %.3f | %.3f |\n", dec.min, dec.median);
  for (ResampleIsa isa : {ResampleIsa::scalar, ResampleIsa::avx2, ResampleIsa::avx512}) {
    set_resample_isa(isa);
    if (resample_isa() != isa) continue;
    const Stats pre = time_ms(3, reps, [&] { preprocess_image(img, cfg, x.data()); });
    std::printf("| preprocess (resize + crop + normalise), %s kernels | %.3f | %.3f |\n", resample_isa_name(isa),
                pre.min, pre.median);
  }
  set_resample_isa(best);
  const Stats total = time_ms(3, reps, [&] {
    const Image im = decode_image_memory(bytes.data(), bytes.size(), jpeg);
    preprocess_image(im, cfg, x.data());
  });
  std::printf("| **mmkit decode + preprocess** | **%.3f** | **%.3f** |\n", total.min, total.median);
  double pil_full = 0;
  if (pil) {
    const auto r = run_child({kPython, kSrc + "/bench/pil_preprocess.py", "time", jpeg, "--reps", std::to_string(reps)});
    const auto j = mmkit::bench::json_lines(r.out);
    if (r.ok && !j.empty()) {
      pil_full = j[0].at("full_ms_min");
      std::printf("| Pillow decode (Image.open + load) | %.3f | %.3f |\n", double(j[0].at("decode_ms_min")),
                  double(j[0].at("decode_ms_median")));
      std::printf("| Pillow + openai/CLIP transform | %.3f | %.3f |\n", pil_full, double(j[0].at("full_ms_median")));
      std::printf("\nmmkit / Pillow (min): %.2fx faster\n", pil_full / total.min);
    } else {
      std::printf("| Pillow | failed | |\n");
    }
  }

  // 2. Parity on the photo set, 3. throughput.
  std::vector<std::string> files = list_image_files(photos);
  MMKIT_CHECK(!files.empty(), "no photos in ", photos);
  files.push_back(jpeg);
  std::vector<uint8_t> ours(files.size() * 224 * 224 * 3);
  for (size_t i = 0; i < files.size(); ++i) preprocess_rgb_into(decode_image_file(files[i]), cfg, &ours[i * 224 * 224 * 3]);
  std::printf("\nphoto set: %zu files in %s (+ the 640x480 JPEG)\n", files.size() - 1, photos.c_str());
  int mismatched = -1;
  if (pil) {
    const std::string list = "/tmp/mmkit_bench/image_bench_list.txt", dump = "/tmp/mmkit_bench/image_bench_pil.u8";
    {
      std::ofstream l(list);
      for (auto& f : files) l << f << "\n";
    }
    const auto r = run_child({kPython, kSrc + "/bench/pil_preprocess.py", "bytes", list, dump});
    MMKIT_CHECK(r.ok, "bench/pil_preprocess.py bytes failed");
    const std::vector<uint8_t> ref = read_bytes(dump);
    MMKIT_CHECK(ref.size() == ours.size(), "Pillow dump has ", ref.size(), " bytes, expected ", ours.size());
    mismatched = 0;
    for (size_t i = 0; i < files.size(); ++i)
      if (std::memcmp(&ours[i * 150528], &ref[i * 150528], 150528) != 0) {
        ++mismatched;
        std::printf("  DIFFERS from Pillow: %s\n", files[i].c_str());
      }
    std::printf("parity with Pillow (224x224x3 bytes after Resize + CenterCrop + RGB): %zu/%zu identical\n",
                files.size() - size_t(mismatched), files.size());
  }
  files.pop_back();
  double best_s = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    const auto t0 = Clock::now();
    for (const auto& f : files) preprocess_image(decode_image_file(f), cfg, x.data());
    best_s = std::min(best_s, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  // The floor: reading + decoding alone (libjpeg-turbo / libpng + zlib, the libraries Pillow uses), per format.
  double dec_s[2] = {1e30, 1e30}, dec_n[2] = {0, 0};
  for (int rep = 0; rep < 2; ++rep) {
    double t[2] = {0, 0};
    dec_n[0] = dec_n[1] = 0;
    for (const auto& f : files) {
      const int k = f.size() > 4 && f.compare(f.size() - 4, 4, ".png") == 0;
      const auto t0 = Clock::now();
      const Image im = decode_image_file(f);
      t[k] += std::chrono::duration<double>(Clock::now() - t0).count();
      dec_n[k] += 1;
    }
    dec_s[0] = std::min(dec_s[0], t[0]);
    dec_s[1] = std::min(dec_s[1], t[1]);
  }
  std::printf("\ndecode alone over the set: JPEG %.2f ms/image (%d files), PNG %.2f ms/image (%d files), all %.2f ms/image\n",
              1e3 * dec_s[0] / std::max(1.0, dec_n[0]), int(dec_n[0]), 1e3 * dec_s[1] / std::max(1.0, dec_n[1]), int(dec_n[1]),
              1e3 * (dec_s[0] + dec_s[1]) / double(files.size()));
  std::printf("\n| photo set, files -> tensors, 1 thread | images/s |\n|---|---|\n| mmkit decode alone (the floor) | %.1f |\n| mmkit | %.1f |\n",
              double(files.size()) / (dec_s[0] + dec_s[1]), double(files.size()) / best_s);
  if (pil) {
    std::ofstream l("/tmp/mmkit_bench/image_bench_list.txt");
    for (auto& f : files) l << f << "\n";
    l.close();
    const auto r = run_child({kPython, kSrc + "/bench/pil_preprocess.py", "throughput",
                              "/tmp/mmkit_bench/image_bench_list.txt", "--reps", "2"});
    const auto j = mmkit::bench::json_lines(r.out);
    if (r.ok && !j.empty()) {
      const double p = j[0].at("images_per_s");
      std::printf("| Pillow + openai/CLIP transform | %.1f |\n\nmmkit / Pillow: %.2fx\n", p,
                  double(files.size()) / best_s / p);
    }
  }
  std::printf("\n%s\n", mmkit::bench::load_average().c_str());
  return mismatched > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  return mmkit::bench::guarded_main("image_bench", argc, argv, run);
}
