// Charts: files are written, decode as PNGs of the expected size, and carry
// real content (many non-background pixels, the series colours present).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <set>

#include "mmkit/core/error.h"
#include "mmkit/report/plots.h"
#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"

namespace {

std::string temp_png(const char* name) {
  return std::string("/tmp/mmkit_test_plots_") + std::to_string(::getpid()) + "_" + name + ".png";
}

struct Stats {
  double ink_fraction;   // pixels differing from white
  size_t distinct;       // distinct colours
  bool has_blue, has_orange;
};

Stats stats(const mmkit::Image& im) {
  Stats s{0, 0, false, false};
  std::set<uint32_t> colours;
  size_t ink = 0;
  for (size_t i = 0; i < im.pixels.size(); i += 3) {
    uint8_t r = im.pixels[i], g = im.pixels[i + 1], b = im.pixels[i + 2];
    if (r != 255 || g != 255 || b != 255) ++ink;
    colours.insert(uint32_t(r) << 16 | uint32_t(g) << 8 | b);
    if (r == 31 && g == 119 && b == 180) s.has_blue = true;
    if (r == 232 && g == 108 && b == 20) s.has_orange = true;
  }
  s.ink_fraction = double(ink) / double(im.pixels.size() / 3);
  s.distinct = colours.size();
  return s;
}

mmkit::Image load_and_remove(const std::string& path) {
  mmkit::Image im = mmkit::decode_image_file(path);
  std::remove(path.c_str());
  return im;
}

}  // namespace

TEST(Plots, TrainingCurves) {
  std::vector<mmkit::EpochPoint> pts;
  for (int e = 1; e <= 20; ++e)
    pts.push_back({e, 1.0 / e, 1.2 / e + 0.05, 0.6 + 0.015 * e, e % 2 ? NAN : 0.55 + 0.014 * e});
  std::string path = temp_png("curves");
  mmkit::plot_training_curves(path, pts, "test curves");
  mmkit::Image im = load_and_remove(path);
  EXPECT_EQ(im.width, 1400);
  EXPECT_EQ(im.height, 620);
  EXPECT_EQ(im.channels, 3);
  Stats s = stats(im);
  EXPECT_GT(s.ink_fraction, 0.03);
  EXPECT_LT(s.ink_fraction, 0.6);
  EXPECT_GT(s.distinct, 20u);  // anti-aliased lines, grid, text
  EXPECT_TRUE(s.has_blue);
  EXPECT_TRUE(s.has_orange);
}

TEST(Plots, TrainingCurvesEdgeCases) {
  const double nan = NAN;
  const std::vector<std::vector<mmkit::EpochPoint>> cases = {
      {{1, 0.5, nan, nan, 0.81}},                          // one epoch
      {{0, 0.3, 0.3, 0.9, 0.9}, {1, 0.3, 0.3, 0.9, 0.9}},  // constant series
      {{1, nan, nan, nan, nan}, {2, nan, nan, nan, nan}},  // all missing
      {{3, INFINITY, 1e9, 1.0, 0.0}, {1, 2.0, -1.0, 0.0, 1.0}},  // unsorted, inf, extremes
      {},                                                  // no points at all
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    std::string path = temp_png("edge");
    mmkit::plot_training_curves(path, cases[i], "");
    mmkit::Image im = load_and_remove(path);
    EXPECT_EQ(im.width, 1400);
    EXPECT_GT(stats(im).ink_fraction, 0.005);  // at least frames, ticks and title
  }
}

TEST(Plots, ConfusionMatrix) {
  const int k = 10;
  std::vector<int64_t> counts(k * k, 0);
  int64_t correct = 0, total = 0;
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      int64_t v = i == j ? 900 - 20 * i : (i * 7 + j * 3) % 11;
      counts[size_t(i * k + j)] = v;
      total += v;
      if (i == j) correct += v;
    }
  std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::string path = temp_png("cm");
  mmkit::plot_confusion_matrix(path, counts, names, "cm test");
  mmkit::Image im = load_and_remove(path);
  EXPECT_GT(im.width, 640);
  EXPECT_GT(im.height, 640);
  Stats s = stats(im);
  EXPECT_GT(s.ink_fraction, 0.2);
  EXPECT_GT(s.distinct, 10u);
  // Diagonal cells are dark (high recall), off-diagonal light.
  int dark = 0;
  for (size_t i = 0; i < im.pixels.size(); i += 3)
    if (im.pixels[i] < 40 && im.pixels[i + 2] > 90) ++dark;
  EXPECT_GT(dark, 10 * 30 * 30);
}

TEST(Plots, ConfusionMatrixSizesAndErrors) {
  for (int k : {1, 2, 37}) {
    SCOPED_TRACE(k);
    std::vector<int64_t> counts(size_t(k * k), 3);
    std::string path = temp_png("cmk");
    mmkit::plot_confusion_matrix(path, counts, {}, "");
    mmkit::Image im = load_and_remove(path);
    EXPECT_GT(stats(im).ink_fraction, 0.05);
  }
  std::string path = temp_png("cm_err");
  EXPECT_THROW(mmkit::plot_confusion_matrix(path, std::vector<int64_t>(5, 1), {}, ""), mmkit::Error);
  EXPECT_THROW(mmkit::plot_confusion_matrix(path, std::vector<int64_t>(4, 1), {"a"}, ""), mmkit::Error);
  EXPECT_THROW(mmkit::plot_confusion_matrix(path, {1, -1, 0, 2}, {}, ""), mmkit::Error);
  mmkit::plot_confusion_matrix(path, std::vector<int64_t>(4, 0), {"a", "b"}, "empty");  // no samples
  load_and_remove(path);
}

TEST(Canvas, TextAndLines) {
  mmkit::Canvas c(100, 40);
  EXPECT_EQ(mmkit::Canvas::text_width("abc", 2), (3 * 6 - 1) * 2);
  c.text(2, 2, "Hi", 2, mmkit::kBlack);
  // 'H' left stem: font column 0, rows 0..6 at scale 2.
  for (int y = 2; y < 16; ++y) EXPECT_EQ(c.get(2, y).r, 0) << "y=" << y;
  EXPECT_EQ(c.get(4, 2).r, 255);  // between the stems
  c.line(10, 30, 90, 30, 3, {255, 0, 0});
  EXPECT_EQ(c.get(50, 30).r, 255);
  EXPECT_EQ(c.get(50, 30).g, 0);
  EXPECT_EQ(c.get(50, 36).g, 255);  // far from the line: untouched
  c.line(-1000, -1000, 1000, 1000, 2, mmkit::kBlack);  // clipped, must not crash
  c.text(-50, -50, std::string("\x01\xff~"), 3, mmkit::kBlack);
}
