#include "mmkit/image/canvas.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit {
namespace {

// The mmkit 5x7 font, drawn for this project. Each glyph is up to 9 rows of
// 5 columns separated by spaces ('#' ink, '.' blank); missing trailing rows
// are blank. Rows 0-6 sit on the baseline (capitals and digits fill all 7,
// lowercase x-height is rows 2-6), rows 7-8 are descenders (g j p q y , ;).
struct GlyphDef {
  char ch;
  const char* rows;
};

constexpr GlyphDef kGlyphDefs[] = {
    {' ', ""},
    {'!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."},
    {'"', ".#.#. .#.#. .#.#."},
    {'#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."},
    {'$', "..#.. .#### #.#.. .###. ..#.# ####. ..#.."},
    {'%', "##... ##..# ...#. ..#.. .#... #..## ...##"},
    {'&', ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#"},
    {'\'', "..#.. ..#.. ..#.."},
    {'(', "...#. ..#.. .#... .#... .#... ..#.. ...#."},
    {')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."},
    {'*', "..... ..#.. #.#.# .###. #.#.# ..#.. ....."},
    {'+', "..... ..#.. ..#.. ##### ..#.. ..#.. ....."},
    {',', "..... ..... ..... ..... ..... ..... .##.. ..#.. .#..."},
    {'-', "..... ..... ..... .###. ..... ..... ....."},
    {'.', "..... ..... ..... ..... ..... .##.. .##.."},
    {'/', "....# ....# ...#. ..#.. .#... #.... #...."},
    {'0', ".###. #...# #..## #.#.# ##..# #...# .###."},
    {'1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'2', ".###. #...# ....# ...#. ..#.. .#... #####"},
    {'3', "##### ...#. ..#.. ...#. ....# #...# .###."},
    {'4', "...#. ..##. .#.#. #..#. ##### ...#. ...#."},
    {'5', "##### #.... ####. ....# ....# #...# .###."},
    {'6', "..##. .#... #.... ####. #...# #...# .###."},
    {'7', "##### ....# ...#. ..#.. .#... .#... .#..."},
    {'8', ".###. #...# #...# .###. #...# #...# .###."},
    {'9', ".###. #...# #...# .#### ....# ...#. .##.."},
    {':', "..... .##.. .##.. ..... .##.. .##.. ....."},
    {';', "..... .##.. .##.. ..... .##.. .##.. ..#.. .#..."},
    {'<', "...#. ..#.. .#... #.... .#... ..#.. ...#."},
    {'=', "..... ..... ##### ..... ##### ..... ....."},
    {'>', ".#... ..#.. ...#. ....# ...#. ..#.. .#..."},
    {'?', ".###. #...# ....# ...#. ..#.. ..... ..#.."},
    {'@', ".###. #...# #.### #.#.# #.### #.... .####"},
    {'A', ".###. #...# #...# ##### #...# #...# #...#"},
    {'B', "####. #...# #...# ####. #...# #...# ####."},
    {'C', ".###. #...# #.... #.... #.... #...# .###."},
    {'D', "###.. #..#. #...# #...# #...# #..#. ###.."},
    {'E', "##### #.... #.... ####. #.... #.... #####"},
    {'F', "##### #.... #.... ####. #.... #.... #...."},
    {'G', ".###. #...# #.... #.### #...# #...# .####"},
    {'H', "#...# #...# #...# ##### #...# #...# #...#"},
    {'I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'J', "..### ...#. ...#. ...#. ...#. #..#. .##.."},
    {'K', "#...# #..#. #.#.. ##... #.#.. #..#. #...#"},
    {'L', "#.... #.... #.... #.... #.... #.... #####"},
    {'M', "#...# ##.## #.#.# #.#.# #...# #...# #...#"},
    {'N', "#...# #...# ##..# #.#.# #..## #...# #...#"},
    {'O', ".###. #...# #...# #...# #...# #...# .###."},
    {'P', "####. #...# #...# ####. #.... #.... #...."},
    {'Q', ".###. #...# #...# #...# #.#.# #..#. .##.#"},
    {'R', "####. #...# #...# ####. #.#.. #..#. #...#"},
    {'S', ".#### #.... #.... .###. ....# ....# ####."},
    {'T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."},
    {'U', "#...# #...# #...# #...# #...# #...# .###."},
    {'V', "#...# #...# #...# #...# #...# .#.#. ..#.."},
    {'W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."},
    {'X', "#...# #...# .#.#. ..#.. .#.#. #...# #...#"},
    {'Y', "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."},
    {'Z', "##### ....# ...#. ..#.. .#... #.... #####"},
    {'[', ".###. .#... .#... .#... .#... .#... .###."},
    {'\\', "#.... #.... .#... ..#.. ...#. ....# ....#"},
    {']', ".###. ...#. ...#. ...#. ...#. ...#. .###."},
    {'^', "..#.. .#.#. #...#"},
    {'_', "..... ..... ..... ..... ..... ..... ..... #####"},
    {'`', ".#... ..#.."},
    {'a', "..... ..... .###. ....# .#### #...# .####"},
    {'b', "#.... #.... ####. #...# #...# #...# ####."},
    {'c', "..... ..... .###. #.... #.... #...# .###."},
    {'d', "....# ....# .#### #...# #...# #...# .####"},
    {'e', "..... ..... .###. #...# ##### #.... .###."},
    {'f', "..##. .#..# .#... ###.. .#... .#... .#..."},
    {'g', "..... ..... .#### #...# #...# #...# .#### ....# .###."},
    {'h', "#.... #.... #.##. ##..# #...# #...# #...#"},
    {'i', "..#.. ..... .##.. ..#.. ..#.. ..#.. .###."},
    {'j', "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##.."},
    {'k', "#.... #.... #..#. #.#.. ##... #.#.. #..#."},
    {'l', ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'m', "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#"},
    {'n', "..... ..... #.##. ##..# #...# #...# #...#"},
    {'o', "..... ..... .###. #...# #...# #...# .###."},
    {'p', "..... ..... ####. #...# #...# #...# ####. #.... #...."},
    {'q', "..... ..... .#### #...# #...# #...# .#### ....# ....#"},
    {'r', "..... ..... #.##. ##..# #.... #.... #...."},
    {'s', "..... ..... .#### #.... .###. ....# ####."},
    {'t', ".#... .#... ###.. .#... .#... .#..# ..##."},
    {'u', "..... ..... #...# #...# #...# #..## .##.#"},
    {'v', "..... ..... #...# #...# #...# .#.#. ..#.."},
    {'w', "..... ..... #...# #...# #.#.# #.#.# .#.#."},
    {'x', "..... ..... #...# .#.#. ..#.. .#.#. #...#"},
    {'y', "..... ..... #...# #...# #...# #...# .#### ....# .###."},
    {'z', "..... ..... ##### ...#. ..#.. .#... #####"},
    {'{', "...## ..#.. ..#.. .#... ..#.. ..#.. ...##"},
    {'|', "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."},
    {'}', "##... ..#.. ..#.. ...#. ..#.. ..#.. ##..."},
    {'~', "..... ..... .#... #.#.# ...#. ..... ....."},
};

constexpr int kRows = kGlyphCapH + kGlyphDescent;  // 9

// Bit rows for ASCII 32..126, built once from kGlyphDefs.
struct Font {
  std::array<std::array<uint8_t, kRows>, 95> rows{};
  Font() {
    for (const GlyphDef& g : kGlyphDefs) {
      auto& dst = rows[size_t(g.ch - 32)];
      int r = 0, col = 0;
      for (const char* p = g.rows; *p && r < kRows; ++p) {
        if (*p == ' ') {
          ++r;
          col = 0;
        } else {
          if (*p == '#' && col < kGlyphW) dst[size_t(r)] |= uint8_t(1u << (kGlyphW - 1 - col));
          ++col;
        }
      }
    }
  }
};

const Font& font() {
  static const Font f;
  return f;
}

inline uint8_t mix(uint8_t a, uint8_t b, float t) { return uint8_t(std::lround(a + (b - a) * t)); }

// Distance from p to segment ab.
double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
  double dx = bx - ax, dy = by - ay;
  double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  double ex = ax + t * dx - px, ey = ay + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

}  // namespace

const uint8_t* font_glyph(char ch) {
  unsigned u = static_cast<unsigned char>(ch);
  if (u < 32 || u > 126) u = '?';
  return font().rows[u - 32].data();
}

Canvas::Canvas(int width, int height, Rgb bg) {
  MMKIT_CHECK(width > 0 && height > 0 && int64_t(width) * height <= 100'000'000, "Canvas: bad size ", width, "x",
              height);
  img_ = Image(width, height, 3);
  for (size_t i = 0; i < img_.pixels.size(); i += 3) {
    img_.pixels[i] = bg.r;
    img_.pixels[i + 1] = bg.g;
    img_.pixels[i + 2] = bg.b;
  }
}

Rgb Canvas::get(int x, int y) const {
  if (x < 0 || y < 0 || x >= width() || y >= height()) return {};
  const uint8_t* p = &img_.pixels[(size_t(y) * width() + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width() || y >= height()) return;
  uint8_t* p = &img_.pixels[(size_t(y) * width() + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Canvas::blend(int x, int y, Rgb c, float a) {
  if (x < 0 || y < 0 || x >= width() || y >= height() || a <= 0.0f) return;
  if (a >= 1.0f) return set(x, y, c);
  uint8_t* p = &img_.pixels[(size_t(y) * width() + x) * 3];
  p[0] = mix(p[0], c.r, a);
  p[1] = mix(p[1], c.g, a);
  p[2] = mix(p[2], c.b, a);
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  int x0 = std::max(x, 0), y0 = std::max(y, 0);
  int x1 = std::min<int64_t>(int64_t(x) + w, width()), y1 = std::min<int64_t>(int64_t(y) + h, height());
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) set(xx, yy, c);
}

void Canvas::rect_outline(int x, int y, int w, int h, int t, Rgb c) {
  fill_rect(x, y, w, t, c);
  fill_rect(x, y + h - t, w, t, c);
  fill_rect(x, y, t, h, c);
  fill_rect(x + w - t, y, t, h, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, double thickness, Rgb c) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  const double r = std::max(thickness, 0.5) * 0.5;
  int bx0 = int(std::floor(std::min(x0, x1) - r - 1)), bx1 = int(std::ceil(std::max(x0, x1) + r + 1));
  int by0 = int(std::floor(std::min(y0, y1) - r - 1)), by1 = int(std::ceil(std::max(y0, y1) + r + 1));
  bx0 = std::max(bx0, 0);
  by0 = std::max(by0, 0);
  bx1 = std::min(bx1, width() - 1);
  by1 = std::min(by1, height() - 1);
  for (int y = by0; y <= by1; ++y)
    for (int x = bx0; x <= bx1; ++x) {
      double d = seg_dist(x + 0.5, y + 0.5, x0, y0, x1, y1);
      double cov = std::clamp(r + 0.5 - d, 0.0, 1.0);
      if (cov > 0) blend(x, y, c, float(cov));
    }
}

void Canvas::disc(double cx, double cy, double radius, Rgb c) { line(cx, cy, cx, cy, 2 * radius, c); }

int Canvas::text_width(const std::string& s, int scale) {
  if (s.empty()) return 0;
  return (int(s.size()) * kGlyphAdvance - (kGlyphAdvance - kGlyphW)) * scale;
}

void Canvas::text(int x, int y, const std::string& s, int scale, Rgb c, Align align, VAlign valign) {
  scale = std::max(scale, 1);
  const int w = text_width(s, scale), h = text_height(scale);
  if (align == Align::center) x -= w / 2;
  if (align == Align::right) x -= w;
  if (valign == VAlign::middle) y -= h / 2;
  if (valign == VAlign::bottom) y -= h;
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t* g = font_glyph(s[i]);
    const int gx = x + int(i) * kGlyphAdvance * scale;
    for (int r = 0; r < kRows; ++r)
      for (int col = 0; col < kGlyphW; ++col)
        if (g[r] & (1u << (kGlyphW - 1 - col))) fill_rect(gx + col * scale, y + r * scale, scale, scale, c);
  }
}

void Canvas::text_vertical(int x, int y, const std::string& s, int scale, Rgb c, Align align, VAlign valign) {
  scale = std::max(scale, 1);
  const int w = text_width(s, scale), h = text_height(scale);
  // Rotated frame: the text runs upward from y0 (its bottom end); glyph tops
  // face left, so font row r lands at column xl + r*scale.
  int y0 = y;
  if (align == Align::center) y0 = y + w / 2;
  if (align == Align::right) y0 = y + w;
  int xl = x;
  if (valign == VAlign::middle) xl = x - h / 2;
  if (valign == VAlign::bottom) xl = x - h;
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t* g = font_glyph(s[i]);
    const int along = int(i) * kGlyphAdvance * scale;
    for (int r = 0; r < kRows; ++r)
      for (int col = 0; col < kGlyphW; ++col)
        if (g[r] & (1u << (kGlyphW - 1 - col)))
          // Counter-clockwise rotation: font column -> up, font row -> right.
          fill_rect(xl + r * scale, y0 - along - (col + 1) * scale, scale, scale, c);
  }
}

}  // namespace mmkit
