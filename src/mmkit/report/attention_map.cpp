#include "mmkit/report/attention_map.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mmkit/core/error.h"
#include "mmkit/image/canvas.h"

namespace mmkit {

namespace {

std::vector<std::string> wrap(const std::string& s, size_t width) {
  std::vector<std::string> lines;
  std::string cur;
  size_t start = 0;
  while (start < s.size()) {
    size_t sp = s.find(' ', start);
    std::string w = s.substr(start, sp == std::string::npos ? std::string::npos : sp - start);
    start = sp == std::string::npos ? s.size() : sp + 1;
    if (!cur.empty() && cur.size() + 1 + w.size() > width) {
      lines.push_back(cur);
      cur.clear();
    }
    cur += (cur.empty() ? "" : " ") + w;
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

}  // namespace

void plot_caption_attention(const std::string& png_path, const Image& image_in, const std::vector<std::string>& words,
                            const std::vector<float>& attention, int grid, bool has_cls, const std::string& title) {
  MMKIT_CHECK(grid > 0 && !image_in.empty(), "attention map: empty image or grid");
  const size_t M = size_t(grid) * size_t(grid) + (has_cls ? 1 : 0);
  MMKIT_CHECK(attention.size() == words.size() * M, "attention map: ", attention.size(), " weights for ",
              words.size(), " words of ", M, " memory tokens");
  const Image img = to_rgb(image_in);
  const int tile = 180, pad = 12, label_h = 34, cols = int(std::min<size_t>(6, words.size() + 1));
  const int rows = int((words.size() + 1 + size_t(cols) - 1) / size_t(cols));
  const int width = cols * (tile + pad) + pad;
  const std::vector<std::string> head = wrap(title, size_t((width - 2 * pad) / (kGlyphAdvance * 2)));
  const int head_h = int(head.size()) * 22 + pad;
  Canvas c(width, head_h + rows * (tile + label_h + pad) + pad, kWhite);
  for (size_t i = 0; i < head.size(); ++i) c.text(pad, pad + int(i) * 22, head[i], 2, kBlack);

  auto draw_tile = [&](int k, const float* a, const std::string& label, const std::string& sub) {
    const int x0 = pad + (k % cols) * (tile + pad), y0 = head_h + (k / cols) * (tile + label_h + pad);
    float amax = 0;
    if (a)
      for (int j = 0; j < grid * grid; ++j) amax = std::max(amax, a[j + (has_cls ? 1 : 0)]);
    for (int y = 0; y < tile; ++y)
      for (int x = 0; x < tile; ++x) {
        const int sx = std::min(img.width - 1, x * img.width / tile), sy = std::min(img.height - 1, y * img.height / tile);
        Rgb p{img.at(sx, sy, 0), img.at(sx, sy, 1), img.at(sx, sy, 2)};
        if (a) {
          // Colour-neutral: patches keep their brightness in proportion to
          // their weight (the scenes' objects are every colour of a heat map).
          const int gx = std::min(grid - 1, x * grid / tile), gy = std::min(grid - 1, y * grid / tile);
          const double f = amax > 0 ? a[gy * grid + gx + (has_cls ? 1 : 0)] / amax : 0;
          auto dim = [f](uint8_t u) { return uint8_t(std::lround(u * (0.15 + 0.85 * f))); };
          p = {dim(p.r), dim(p.g), dim(p.b)};
        }
        c.set(x0 + x, y0 + y, p);
      }
    if (a) {  // the most attended patch
      int best = 0;
      for (int j = 1; j < grid * grid; ++j)
        if (a[j + (has_cls ? 1 : 0)] > a[best + (has_cls ? 1 : 0)]) best = j;
      const int cell = tile / grid;
      c.rect_outline(x0 + (best % grid) * tile / grid, y0 + (best / grid) * tile / grid, cell, cell, 2, {220, 0, 220});
    }
    c.rect_outline(x0 - 1, y0 - 1, tile + 2, tile + 2, 1, {120, 120, 120});
    c.text(x0 + tile / 2, y0 + tile + 4, label, 2, kBlack, Align::center);
    if (!sub.empty()) c.text(x0 + tile / 2, y0 + tile + 22, sub, 1, {90, 90, 90}, Align::center);
  };
  draw_tile(0, nullptr, "input", "");
  for (size_t w = 0; w < words.size(); ++w) {
    const float* a = attention.data() + w * M;
    char sub[48] = "";
    if (has_cls) std::snprintf(sub, sizeof sub, "class token %.2f", double(a[0]));
    draw_tile(int(w) + 1, a, words[w], sub);
  }
  write_png(png_path, c.image());
}

}  // namespace mmkit
