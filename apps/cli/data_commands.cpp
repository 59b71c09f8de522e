// `mmkit data shapes`, `mmkit data sort-of-clevr`, `mmkit data soc-captions`:
// the generated data sets (deterministic in their seed) that the tests,
// benchmarks and recipes train and evaluate on.
#include <cstdio>

#include "cli.h"
#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/soc_captions.h"
#include "mmkit/data/sort_of_clevr.h"
#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::cli {
namespace {

struct ShapesArgs {
  std::string out;
  int64_t n = 100;
  int size = 64;
  uint64_t seed = 1;  // as every generator
};

// Synthetic images: one or two coloured discs / squares / bars on a tinted
// background, deterministic in (seed, index). Names: shape_000123.png.
int run_shapes(const ShapesArgs& a) {
  MMKIT_CHECK(a.n > 0 && a.size >= 16, "--n must be positive and --size at least 16");
  make_dirs(a.out);
  Progress::Options po;
  po.unit = "img/s";
  Progress bar("shapes", a.n, stderr, po);
  for (int64_t i = 0; i < a.n; ++i) {
    Rng rng(a.seed * 1000003u + uint64_t(i));
    auto u8 = [&](int lo, int hi) { return uint8_t(lo + int(rng.uniform() * float(hi - lo))); };
    const int S = a.size;
    Canvas c(S, S, Rgb{u8(180, 255), u8(180, 255), u8(180, 255)});
    const int shapes = 1 + int(rng.uniform() * 2);
    for (int s = 0; s < shapes; ++s) {
      Rgb col{u8(0, 200), u8(0, 200), u8(0, 200)};
      const double cx = S * (0.25 + 0.5 * rng.uniform()), cy = S * (0.25 + 0.5 * rng.uniform());
      const double r = S * (0.1 + 0.2 * rng.uniform());
      switch (int(rng.uniform() * 3)) {
        case 0: c.disc(cx, cy, r, col); break;
        case 1: c.fill_rect(int(cx - r), int(cy - r), int(2 * r), int(2 * r), col); break;
        default: c.line(cx - r, cy - r, cx + r, cy + r, r / 2, col); break;
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "/shape_%06lld.png", (long long)i);
    write_png(a.out + name, c.image());
    bar.update(i + 1);
  }
  bar.finish();
  std::printf("wrote %lld images to %s\n", (long long)a.n, a.out.c_str());
  return 0;
}

int run_sort_of_clevr(const data::SortOfClevrOptions& o) {
  make_dirs(o.out_dir);
  data::write_sort_of_clevr(o);
  std::printf("wrote %lld train + %lld test images (20 questions each) to %s\n",
              (long long)o.train_images, (long long)o.test_images, o.out_dir.c_str());
  return 0;
}

int run_soc_captions(const data::SocCaptionOptions& o) {
  make_dirs(o.out_dir);
  data::write_soc_captions(o);
  std::printf("wrote %lld train + %lld test images (%d captions each) to %s\n", (long long)o.train_images,
              (long long)o.test_images, o.captions_per_image, o.out_dir.c_str());
  return 0;
}

}  // namespace

void add_data_commands(Cli& c) {
  auto ha = std::make_shared<ShapesArgs>();
  auto* sh = c.data->add_subcommand("shapes", "synthetic PNG images of coloured shapes");
  sh->add_option("--out", ha->out, "output folder (created)")->required();
  sh->add_option("--n", ha->n, "number of images")->capture_default_str();
  sh->add_option("--size", ha->size, "side in pixels")->capture_default_str();
  sh->add_option("--seed", ha->seed, "random seed of the generator")->capture_default_str();
  c.on(sh, ha, run_shapes);

  auto sa = std::make_shared<data::SortOfClevrOptions>();
  auto* so = c.data->add_subcommand("sort-of-clevr",
                                    "generate Sort-of-CLEVR (PNG images + JSONL questions, train/test split)");
  so->add_option("--out", sa->out_dir, "output folder (created)")->required();
  so->add_option("--train", sa->train_images, "training images")->capture_default_str();
  so->add_option("--test", sa->test_images, "held-out test images")->capture_default_str();
  so->add_option("--seed", sa->seed, "random seed of the generator")->capture_default_str();
  c.on(so, sa, run_sort_of_clevr);

  auto ca = std::make_shared<data::SocCaptionOptions>();
  auto* sc = c.data->add_subcommand("soc-captions",
                                    "generate Sort-of-CLEVR images with reference captions (PNG + JSONL, train/test)");
  sc->add_option("--out", ca->out_dir, "output folder (created)")->required();
  sc->add_option("--train", ca->train_images, "training images")->capture_default_str();
  sc->add_option("--test", ca->test_images, "held-out test images")->capture_default_str();
  sc->add_option("--captions", ca->captions_per_image, "reference captions per image (1..6)")->capture_default_str();
  sc->add_option("--seed", ca->seed, "random seed of the generator")->capture_default_str();
  c.on(sc, ca, run_soc_captions);
}

}  // namespace mmkit::cli
