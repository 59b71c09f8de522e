// The vectorised resampling kernels (image/resample_kernels.h) against the scalar reference, and
// resize_region against cutting the window out of resize_pil: every byte must agree, for every
// instruction set the CPU has, on random images of the channel counts, sizes, scale factors and
// windows the preprocessing uses (and awkward ones: 1-pixel axes, upscales, right-edge pixels
// whose taps end at the row's last byte). Pillow parity of resize_pil itself is
// tests/test_preprocess.cpp's job.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "mmkit/core/rng.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/image/resample.h"
#include "mmkit/image/resample_kernels.h"

using mmkit::Filter;
using mmkit::Image;
using mmkit::ResampleIsa;

namespace {

Image random_image(int w, int h, int c, uint64_t seed) {
  Image im(w, h, c);
  mmkit::Rng rng(seed);
  // Mostly noise, with saturated runs so the clip at 0 and 255 (bicubic overshoot) is exercised.
  for (size_t i = 0; i < im.pixels.size(); ++i) {
    const uint64_t r = rng.next_u64();
    im.pixels[i] = (r >> 60) == 0 ? 0 : (r >> 60) == 1 ? 255 : uint8_t(r);
  }
  return im;
}

// Restores the process-wide choice when a test ends.
struct IsaGuard {
  ResampleIsa saved = mmkit::resample_isa();
  ~IsaGuard() { mmkit::set_resample_isa(saved); }
};

std::vector<ResampleIsa> vector_isas() {
  std::vector<ResampleIsa> v;
  IsaGuard g;
  for (ResampleIsa isa : {ResampleIsa::avx2, ResampleIsa::avx512}) {
    mmkit::set_resample_isa(isa);
    if (mmkit::resample_isa() == isa) v.push_back(isa);
  }
  return v;
}

}  // namespace

TEST(ResampleKernels, VectorPassesEqualScalar) {
  const auto isas = vector_isas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512: only the scalar kernels run";
  IsaGuard guard;
  struct Case {
    int in, out;
  };
  // Downscales of the photo sizes to CLIP's 224, upscales, and tiny axes.
  const Case cases[] = {{640, 298}, {480, 224}, {1024, 224}, {333, 224}, {224, 224 + 3}, {7, 30},
                        {1, 5},     {5, 1},     {97, 13},   {300, 299}, {17, 16}};
  int checked = 0;
  for (Filter f : {Filter::bicubic, Filter::bilinear})
    for (const Case& cs : cases)
      for (int C = 1; C <= 4; ++C) {
        const int rows = 3;
        const Image im = random_image(cs.in, rows, C, uint64_t(cs.in * 131 + cs.out * 7 + C));
        const mmkit::Taps t = mmkit::make_taps(cs.in, cs.out, f);
        // Horizontal pass, the whole row and a window ending at the last column.
        for (auto [x0, x1] : {std::pair{0, cs.out}, std::pair{cs.out / 3, cs.out}}) {
          const size_t ob = size_t(x1 - x0) * C;
          std::vector<uint8_t> want(ob * rows), got(ob * rows);
          mmkit::resample_rows_scalar(im.pixels.data(), size_t(cs.in) * C, C, rows, t, x0, x1, want.data(), ob);
          for (ResampleIsa isa : isas) {
            mmkit::set_resample_isa(isa);
            std::fill(got.begin(), got.end(), 0xAB);
            mmkit::resample_rows(im.pixels.data(), size_t(cs.in) * C, C, rows, t, x0, x1, got.data(), ob);
            ASSERT_EQ(got, want) << "rows " << mmkit::resample_isa_name(isa) << " " << mmkit::filter_name(f) << " "
                                 << cs.in << "->" << cs.out << " C=" << C << " x " << x0 << ".." << x1;
            ++checked;
          }
        }
        // Vertical pass: the image as one column of in rows, each `bytes` wide (odd widths hit the tails).
        for (size_t bytes : {size_t(1), size_t(15), size_t(64 * 3 + 5), size_t(224 * 3)}) {
          const Image col = random_image(int(bytes), cs.in, 1, bytes * 977 + size_t(cs.in));
          const int y0 = cs.out / 4, y1 = cs.out;
          const int row0 = t.first[size_t(y0)];
          const uint8_t* in = col.pixels.data() + size_t(row0) * bytes;
          std::vector<uint8_t> want(bytes * size_t(y1 - y0)), got(want.size());
          mmkit::resample_cols_scalar(in, bytes, row0, t, y0, y1, bytes, want.data(), bytes);
          for (ResampleIsa isa : isas) {
            mmkit::set_resample_isa(isa);
            std::fill(got.begin(), got.end(), 0xAB);
            mmkit::resample_cols(in, bytes, row0, t, y0, y1, bytes, got.data(), bytes);
            ASSERT_EQ(got, want) << "cols " << mmkit::resample_isa_name(isa) << " " << mmkit::filter_name(f) << " "
                                 << cs.in << "->" << cs.out << " bytes " << bytes;
            ++checked;
          }
        }
      }
  EXPECT_GT(checked, 400);
}

TEST(ResampleKernels, RegionIsWindowOfFullResize) {
  const Image im = random_image(211, 157, 3, 5);
  for (Filter f : {Filter::bicubic, Filter::bilinear})
    for (auto [w, h] : {std::pair{100, 74}, std::pair{211, 90}, std::pair{90, 157}, std::pair{300, 200}}) {
      const Image full = mmkit::resize_pil(im, w, h, f);
      const int x0 = w / 5, x1 = w - w / 7, y0 = h / 3, y1 = h - 1;
      std::vector<uint8_t> win(size_t(x1 - x0) * (y1 - y0) * 3);
      mmkit::resize_region(im.pixels.data(), im.width, im.height, 3, w, h, f, x0, x1, y0, y1, win.data(),
                           size_t(x1 - x0) * 3);
      for (int y = y0; y < y1; ++y)
        ASSERT_EQ(0, std::memcmp(win.data() + size_t(y - y0) * (x1 - x0) * 3, full.row(y) + size_t(x0) * 3,
                                 size_t(x1 - x0) * 3))
            << mmkit::filter_name(f) << " " << w << "x" << h << " row " << y;
    }
}

// The fast preprocessing path (window of the resize, gray replicated after it) against the
// whole-image composition it replaces, on shapes that pad, crop one axis only, or keep the size.
TEST(ResampleKernels, PreprocessFastPathEqualsComposition) {
  for (const char* preset : {"clip", "siglip", "imagenet"})
    for (auto [w, h, c] : {std::tuple{640, 480, 3}, std::tuple{300, 451, 3}, std::tuple{100, 60, 3},
                           std::tuple{224, 224, 3}, std::tuple{333, 200, 1}, std::tuple{120, 250, 4}}) {
      const auto cfg = mmkit::preprocess_preset(preset, 224);
      const Image im = random_image(w, h, c, uint64_t(w * 3 + h));
      Image ref = cfg.rgb_before_resize ? mmkit::to_rgb(im) : im;
      if (cfg.square_resize) {
        ref = mmkit::to_rgb(mmkit::resize_pil(ref, cfg.crop, cfg.crop, cfg.filter));
      } else {
        const auto [rw, rh] = mmkit::shorter_side_resize_size(ref.width, ref.height, cfg.size);
        ref = mmkit::to_rgb(mmkit::center_crop(mmkit::resize_pil(ref, rw, rh, cfg.filter), cfg.crop, cfg.crop));
      }
      EXPECT_EQ(mmkit::preprocess_rgb(im, cfg).pixels, ref.pixels) << preset << " " << w << "x" << h << "x" << c;
    }
}
