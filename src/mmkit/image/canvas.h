// A small RGB raster for charts: filled rectangles, anti-aliased lines and
// discs, and text in a built-in 5x7 bitmap font (printable ASCII, with
// descenders), scaled by an integer factor.
//
//   mmkit::Canvas c(640, 480, mmkit::kWhite);
//   c.line(10, 10, 200, 100, 2.0, {31, 119, 180});
//   c.text(320, 20, "Loss", 3, mmkit::kBlack, mmkit::Align::center);
//   mmkit::write_png("out.png", c.image());
//
// Coordinates: pixels, origin top-left, x right, y down; pixel (x, y) covers
// [x, x+1) x [y, y+1). Drawing outside the canvas is clipped.
#pragma once
#include <cstdint>
#include <string>

#include "mmkit/image/image.h"

namespace mmkit {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};
constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};

// Horizontal anchor of a text's box at x; vertical anchor at y. The box is
// the cap height (7 font rows * scale); descenders hang below it.
enum class Align { left, center, right };
enum class VAlign { top, middle, bottom };

// Font metrics in font pixels (multiply by scale).
constexpr int kGlyphW = 5, kGlyphCapH = 7, kGlyphDescent = 2, kGlyphAdvance = 6;

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = kWhite);

  int width() const { return img_.width; }
  int height() const { return img_.height; }
  const Image& image() const { return img_; }  // RGB, 3 channels

  Rgb get(int x, int y) const;
  void set(int x, int y, Rgb c);
  // c over the pixel with opacity a in [0, 1].
  void blend(int x, int y, Rgb c, float a);

  void fill_rect(int x, int y, int w, int h, Rgb c);
  // Outline of thickness t drawn inside the rectangle.
  void rect_outline(int x, int y, int w, int h, int t, Rgb c);
  // Segment with round caps, `thickness` pixels wide, anti-aliased by the
  // distance of each pixel centre to the segment.
  void line(double x0, double y0, double x1, double y1, double thickness, Rgb c);
  void disc(double cx, double cy, double radius, Rgb c);

  // Text on one line; characters outside printable ASCII draw as '?'.
  void text(int x, int y, const std::string& s, int scale, Rgb c, Align align = Align::left,
            VAlign valign = VAlign::top);
  // Rotated 90 degrees counter-clockwise (reads bottom to top), as for a y
  // axis label. Anchors refer to the rotated box: `align` positions along the
  // text direction (left = the text starts at y and runs upward; center =
  // centred on y; right = it ends at y), `valign` across it (top = the
  // glyph tops face x, box to the right of x; middle = centred on x).
  void text_vertical(int x, int y, const std::string& s, int scale, Rgb c, Align align = Align::center,
                     VAlign valign = VAlign::middle);

  static int text_width(const std::string& s, int scale);  // advance width without trailing gap
  static int text_height(int scale) { return kGlyphCapH * scale; }

 private:
  Image img_;
};

// The font: row bits of glyph ch (bit 4 = leftmost column), rows 0..8, rows
// 0..6 above the baseline and 7..8 the descender. Returns '?' for others.
const uint8_t* font_glyph(char ch);

}  // namespace mmkit
