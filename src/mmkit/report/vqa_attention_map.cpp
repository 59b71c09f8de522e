#include "mmkit/report/vqa_attention_map.h"

#include <algorithm>
#include <cstdio>

#include "mmkit/core/error.h"
#include "mmkit/image/canvas.h"

namespace mmkit {

void write_attention_map(const std::string& png_path, const Image& image, const std::vector<PatchAttention>& layers,
                         const std::string& question, const std::string& answer, float probability) {
  MMKIT_CHECK(!image.empty(), "attention map: empty image");
  Image rgb = image.channels == 3 ? image : to_rgb(image);
  // Panels of about 300 px (200 px when there are more than four maps); nearest-neighbour scaling keeps
  // pixels crisp.
  const int scale = std::max(1, (layers.size() > 4 ? 200 : 300) / std::max(rgb.width, rgb.height));
  const int pw = rgb.width * scale, ph = rgb.height * scale, gap = 20, top = 70, bottom = 30;
  const int panels = 1 + int(layers.size());
  Canvas c(gap + panels * (pw + gap), top + ph + bottom, kWhite);
  char title[512];
  std::snprintf(title, sizeof title, "A: %s  (p = %.3f)", answer.c_str(), double(probability));
  c.text(gap, 12, "Q: " + question, 2, kBlack);
  c.text(gap, 38, title, 2, Rgb{180, 30, 30});
  c.text(c.width() - gap, 38, "fusion: text->image attention, mean over heads and words", 1, kBlack, Align::right);
  for (int p = 0; p < panels; ++p) {
    const int x0 = gap + p * (pw + gap);
    const PatchAttention* att = p == 0 ? nullptr : &layers[size_t(p - 1)];
    float mx = 0;
    if (att) {
      MMKIT_CHECK(att->grid > 0 && att->map.size() == size_t(att->grid) * size_t(att->grid),
                  "attention map: layer ", p, " has ", att->map.size(), " weights for a grid of ", att->grid);
      for (float v : att->map) mx = std::max(mx, v);
    }
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) {
        const int sx = x / scale, sy = y / scale;
        Rgb px{rgb.at(sx, sy, 0), rgb.at(sx, sy, 1), rgb.at(sx, sy, 2)};
        if (att) {
          const int gx = std::min(att->grid - 1, sx * att->grid / rgb.width);
          const int gy = std::min(att->grid - 1, sy * att->grid / rgb.height);
          const float w = mx > 0 ? att->map[size_t(gy * att->grid + gx)] / mx : 0.f;  // 0..1
          // Low attention: darken towards gray; high: keep the pixel, tint red.
          const float keep = 0.25f + 0.75f * w;
          auto mixc = [&](uint8_t v, float tint) {
            return uint8_t(std::clamp(v * keep + 60.f * (1 - keep) + tint * w * 0.35f, 0.f, 255.f));
          };
          px = {mixc(px.r, 255.f - px.r), mixc(px.g, -float(px.g)), mixc(px.b, -float(px.b))};
        }
        c.set(x0 + x, top + y, px);
      }
    if (att)
      for (int k = 1; k < att->grid; ++k) {
        const int gx = x0 + k * pw / att->grid, gy = top + k * ph / att->grid;
        c.fill_rect(gx, top, 1, ph, Rgb{200, 200, 200});
        c.fill_rect(x0, gy, pw, 1, Rgb{200, 200, 200});
      }
    c.rect_outline(x0 - 1, top - 1, pw + 2, ph + 2, 1, Rgb{120, 120, 120});
    const std::string label = p == 0 ? "image" : att->label.empty() ? "fusion layer " + std::to_string(p) : att->label;
    c.text(x0 + pw / 2, top + ph + 8, label, layers.size() > 4 ? 1 : 2, kBlack, Align::center);
  }
  write_png(png_path, c.image());
}

}  // namespace mmkit
