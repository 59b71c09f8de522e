// A generated image set with known near-duplicates, shared by
// tests/test_serve_live_index.cpp (precision and recall at the default
// threshold) and bench/live_index_bench.cpp (--duplicates: precision and recall
// over a sweep of thresholds, how the default was chosen; docs/LIVE_INDEX.md).
//
// `originals` images of a few random discs, bars and boxes on a tinted
// background; the first `with_copies` of them get copies, by i % 5: an exact
// copy; a JPEG at quality 75; a JPEG at quality 50; resized to 3/4 of the side;
// resized to 3/2 and also that as a JPEG at quality 80. Item ids name the kind
// ("o12", "jpeg50-12", ...) and `origin` the original.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mmkit/core/rng.h"
#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"
#include "mmkit/image/jpeg_encode.h"

namespace mmkit::neardup {

struct Item {
  std::string id;
  std::vector<uint8_t> bytes;  // PNG or JPEG
  int origin = 0;
};

inline Image original(int i, int size, uint64_t seed) {
  Rng rng(seed * 1000003 + uint64_t(i));
  auto u8 = [&](int lo, int hi) { return uint8_t(lo + int(rng.uniform() * float(hi - lo))); };
  Canvas c(size, size, Rgb{u8(120, 255), u8(120, 255), u8(120, 255)});
  const int shapes = 2 + int(rng.uniform() * 3);
  for (int s = 0; s < shapes; ++s) {
    const Rgb col{u8(0, 255), u8(0, 255), u8(0, 255)};
    const double x = size * rng.uniform(), y = size * rng.uniform(), r = size * (0.08 + 0.22 * rng.uniform());
    switch (int(rng.uniform() * 3)) {
      case 0: c.disc(x, y, r, col); break;
      case 1: c.line(x - r, y - r * rng.uniform(), x + r, y + r, 2 + r / 3, col); break;
      default: c.fill_rect(int(x - r), int(y - r), int(2 * r), int(1.4 * r), col);
    }
  }
  return c.image();
}

inline std::vector<Item> near_duplicate_set(int originals, int with_copies, int size, uint64_t seed) {
  std::vector<Item> out;
  for (int i = 0; i < originals; ++i) {
    const Image im = original(i, size, seed);
    const std::string n = std::to_string(i);
    out.push_back({"o" + n, encode_png(im), i});
    if (i >= with_copies) continue;
    const int s34 = size * 3 / 4, s32 = size * 3 / 2;
    switch (i % 5) {
      case 0: out.push_back({"copy" + n, encode_png(im), i}); break;
      case 1: out.push_back({"jpeg75-" + n, encode_jpeg(im, 75), i}); break;
      case 2: out.push_back({"jpeg50-" + n, encode_jpeg(im, 50), i}); break;
      case 3: out.push_back({"small" + n, encode_png(resize_bilinear(im, s34, s34)), i}); break;
      default:
        out.push_back({"large" + n, encode_png(resize_bilinear(im, s32, s32)), i});
        out.push_back({"large-jpeg" + n, encode_jpeg(resize_bilinear(im, s32, s32), 80), i});
    }
  }
  return out;
}

struct PairScore {
  int64_t truth = 0, right = 0, wrong = 0;  // true duplicate pairs; pairs found in a group: right, wrong
  double precision = 0, recall = 0;
};

// Pairs inside the found groups against pairs of items with one origin.
inline PairScore score_groups(const std::vector<std::vector<std::string>>& groups, const std::map<std::string, int>& origin) {
  PairScore s;
  for (auto& g : groups)
    for (size_t a = 0; a < g.size(); ++a)
      for (size_t b = a + 1; b < g.size(); ++b) (origin.at(g[a]) == origin.at(g[b]) ? s.right : s.wrong)++;
  std::map<int, int64_t> per_origin;
  for (auto& [id, o] : origin) per_origin[o]++;
  for (auto& [o, n] : per_origin) s.truth += n * (n - 1) / 2;
  s.precision = s.right + s.wrong ? double(s.right) / double(s.right + s.wrong) : 1.0;
  s.recall = s.truth ? double(s.right) / double(s.truth) : 1.0;
  return s;
}

}  // namespace mmkit::neardup
