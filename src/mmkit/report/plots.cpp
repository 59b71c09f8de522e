#include "mmkit/report/plots.h"

#include <algorithm>
#include <cstdio>

#include "mmkit/core/error.h"
#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"

namespace mmkit {
namespace {

constexpr Rgb kInk{34, 34, 34};
constexpr Rgb kMuted{110, 110, 110};
constexpr Rgb kAxis{80, 80, 80};
constexpr Rgb kFrame{200, 200, 200};
constexpr Rgb kGrid{234, 234, 234};
constexpr Rgb kTrainColor{31, 119, 180};  // blue
constexpr Rgb kTestColor{232, 108, 20};   // orange

// ------------------------------------------------------------------ axes

struct Axis {
  double lo = 0, hi = 1;        // mapped range
  std::vector<double> ticks;    // values inside [lo, hi]
  double step = 1;
};

// A "nice" step (1, 2, 2.5 or 5 times a power of ten; integers only from 1,
// 2, 5 when `integer`) giving about `target` intervals over span.
double nice_step(double span, int target, bool integer) {
  double raw = span / std::max(target, 1);
  if (!(raw > 0) || !std::isfinite(raw)) return 1.0;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double nice;
  if (integer && mag < 10)
    nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  else
    nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  double step = nice * mag;
  return integer ? std::max(1.0, std::round(step)) : step;
}

void fill_ticks(Axis* a, bool integer, int target) {
  a->step = nice_step(a->hi - a->lo, target, integer);
  a->ticks.clear();
  double first = std::ceil(a->lo / a->step - 1e-9) * a->step;
  for (int i = 0; i < 100; ++i) {
    double v = first + i * a->step;
    if (v > a->hi + 1e-9 * a->step) break;
    a->ticks.push_back(std::fabs(v) < 1e-12 * a->step ? 0.0 : v);
  }
}

// Value axis: data range [lo, hi] padded a little and widened to whole steps,
// so the extreme points never sit on the frame.
Axis value_axis(double lo, double hi, bool percent) {
  if (hi - lo <= std::max(std::fabs(hi), std::fabs(lo)) * 1e-9) {  // constant series
    double d = std::max(std::fabs(lo) * 0.05, percent ? 1.0 : 1e-3);
    lo -= d;
    hi += d;
  }
  double pad = (hi - lo) * 0.04;
  Axis a;
  a.step = nice_step(hi - lo + 2 * pad, 6, false);
  a.lo = std::floor((lo - pad) / a.step) * a.step;
  a.hi = std::ceil((hi + pad) / a.step) * a.step;
  if (percent) {
    // Accuracy lives in [0, 100]: don't label impossible values.
    if (lo >= 0) a.lo = std::max(a.lo, 0.0);
    if (hi <= 100) a.hi = std::min(a.hi, 100.0);
  }
  fill_ticks(&a, false, 6);
  return a;
}

Axis epoch_axis(double lo, double hi) {
  Axis a;
  double pad = hi > lo ? (hi - lo) * 0.04 : 0.5;
  a.lo = lo - pad;
  a.hi = hi + pad;
  fill_ticks(&a, true, 8);
  return a;
}

std::string format_tick(double v, double step) {
  char buf[64];
  if (v != 0 && (std::fabs(v) >= 1e6 || step < 1e-4)) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.0"
  return s;
}

std::string format_value(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// ------------------------------------------------------------------ curves

struct Series {
  std::string name;
  Rgb color;
  std::vector<double> x, y;  // finite points only, sorted by x
};

struct Rect {
  int x, y, w, h;
};

void draw_legend(Canvas& c, int right, int cy, const std::vector<const Series*>& shown) {
  const int s = 2, sample = 28, gap = 22;
  int x = right;
  for (auto it = shown.rbegin(); it != shown.rend(); ++it) {
    const Series& se = **it;
    x -= Canvas::text_width(se.name, s);
    c.text(x, cy, se.name, s, kInk, Align::left, VAlign::middle);
    x -= 8 + sample;
    c.line(x, cy, x + sample, cy, 2.5, se.color);
    c.disc(x + sample / 2.0, cy, 3.5, se.color);
    x -= gap;
  }
}

void draw_panel(Canvas& c, Rect panel, const std::string& name, const std::vector<Series>& series,
                double x_lo, double x_hi, bool percent) {
  const Rect plot{panel.x + 96, panel.y + 48, panel.w - 96 - 28, panel.h - 48 - 78};
  const int left = plot.x, right = plot.x + plot.w, top = plot.y, bottom = plot.y + plot.h;

  c.text(left, panel.y + 16, name, 2, kInk, Align::left, VAlign::middle);

  std::vector<const Series*> shown;
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series) {
    if (s.y.empty()) continue;
    shown.push_back(&s);
    for (double v : s.y) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  draw_legend(c, right, panel.y + 16, shown);

  const Axis ax = epoch_axis(x_lo, x_hi);
  auto sx = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * plot.w; };

  // X grid and ticks are drawn even without data so empty panels keep their shape.
  for (double t : ax.ticks) {
    int px = int(std::lround(sx(t)));
    c.fill_rect(px, top, 1, plot.h, kGrid);
    c.fill_rect(px, bottom, 1, 6, kAxis);
    c.text(px, bottom + 12, format_tick(t, ax.step), 2, kInk, Align::center, VAlign::top);
  }
  c.text(left + plot.w / 2, bottom + 46, "epoch", 2, kMuted, Align::center, VAlign::top);

  if (shown.empty()) {
    c.rect_outline(left, top, plot.w + 1, plot.h + 1, 1, kFrame);
    c.text(left + plot.w / 2, top + plot.h / 2, "no data", 2, kMuted, Align::center, VAlign::middle);
    return;
  }

  const Axis ay = value_axis(lo, hi, percent);
  auto sy = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * plot.h; };
  for (double t : ay.ticks) {
    int py = int(std::lround(sy(t)));
    c.fill_rect(left, py, plot.w, 1, kGrid);
    c.fill_rect(left - 6, py, 6, 1, kAxis);
    c.text(left - 12, py, format_tick(t, ay.step), 2, kInk, Align::right, VAlign::middle);
  }
  c.rect_outline(left, top, plot.w + 1, plot.h + 1, 1, kFrame);
  c.fill_rect(left, top, 1, plot.h + 1, kAxis);
  c.fill_rect(left, bottom, plot.w + 1, 1, kAxis);

  for (const Series* s : shown) {
    const size_t n = s->x.size();
    for (size_t i = 1; i < n; ++i) c.line(sx(s->x[i - 1]), sy(s->y[i - 1]), sx(s->x[i]), sy(s->y[i]), 2.5, s->color);
    // Markers show where the measurements are; past ~50 they only clutter.
    if (n <= 50)
      for (size_t i = 0; i < n; ++i) c.disc(sx(s->x[i]), sy(s->y[i]), n == 1 ? 5.0 : 3.5, s->color);
  }
}

Series make_series(const std::string& name, Rgb color, const std::vector<EpochPoint>& pts,
                   double EpochPoint::*field, double mul) {
  Series s{name, color, {}, {}};
  for (const EpochPoint& p : pts) {
    double v = p.*field;
    if (std::isfinite(v)) {
      s.x.push_back(p.epoch);
      s.y.push_back(v * mul);
    }
  }
  return s;
}

// ------------------------------------------------------------------ heat map

// White -> light blue -> dark blue, for fraction f in [0, 1].
Rgb heat_color(double f) {
  static const Rgb stops[] = {{247, 251, 255}, {200, 221, 240}, {110, 172, 214}, {35, 112, 180}, {10, 50, 110}};
  f = std::clamp(std::isfinite(f) ? f : 0.0, 0.0, 1.0) * 4.0;
  int i = std::min(int(f), 3);
  double t = f - i;
  auto m = [&](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * t)); };
  return {m(stops[i].r, stops[i + 1].r), m(stops[i].g, stops[i + 1].g), m(stops[i].b, stops[i + 1].b)};
}

bool is_dark(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140; }

std::string clip_name(const std::string& s, size_t max_chars) {
  return s.size() <= max_chars ? s : s.substr(0, max_chars - 2) + "..";
}

}  // namespace

void plot_training_curves(const std::string& png_path, const std::vector<EpochPoint>& pts_in,
                          const std::string& title) {
  std::vector<EpochPoint> pts = pts_in;
  std::stable_sort(pts.begin(), pts.end(), [](const EpochPoint& a, const EpochPoint& b) { return a.epoch < b.epoch; });

  const int W = 1400, H = 620;
  Canvas c(W, H, kWhite);
  c.text(W / 2, 22, title.empty() ? std::string("training curves") : title, 3, kInk, Align::center, VAlign::top);

  // Subtitle: the last epoch's numbers, which is what a reader looks for first.
  if (!pts.empty()) {
    const EpochPoint& p = pts.back();
    std::string sub = "epoch " + std::to_string(p.epoch) + ":";
    auto add = [&](const char* label, double v, int dec, const char* unit) {
      if (std::isfinite(v)) sub += std::string("  ") + label + " " + format_value(v, dec) + unit;
    };
    add("train loss", p.train_loss, 4, "");
    add("test loss", p.test_loss, 4, "");
    add("train acc", p.train_acc * 100, 2, "%");
    add("test acc", p.test_acc * 100, 2, "%");
    if (sub.back() != ':') c.text(W / 2, 56, sub, 2, kMuted, Align::center, VAlign::top);
  }

  double x_lo = 0, x_hi = 1;
  if (!pts.empty()) {
    x_lo = pts.front().epoch;
    x_hi = pts.back().epoch;
  }
  std::vector<Series> loss = {make_series("train", kTrainColor, pts, &EpochPoint::train_loss, 1.0),
                              make_series("test", kTestColor, pts, &EpochPoint::test_loss, 1.0)};
  std::vector<Series> acc = {make_series("train", kTrainColor, pts, &EpochPoint::train_acc, 100.0),
                             make_series("test", kTestColor, pts, &EpochPoint::test_acc, 100.0)};
  const int top = 84;
  draw_panel(c, Rect{0, top, W / 2, H - top}, "loss", loss, x_lo, x_hi, false);
  draw_panel(c, Rect{W / 2, top, W / 2, H - top}, "accuracy (%)", acc, x_lo, x_hi, true);
  write_png(png_path, c.image());
}

void plot_confusion_matrix(const std::string& png_path, const std::vector<int64_t>& counts,
                           const std::vector<std::string>& class_names_in, const std::string& title) {
  const int k = int(std::lround(std::sqrt(double(counts.size()))));
  if (k < 1 || size_t(k) * k != counts.size())
    fail("plot_confusion_matrix: counts has ", counts.size(), " entries, expected k*k for some k >= 1");
  if (k > 1000) fail("plot_confusion_matrix: ", k, " classes is too many to draw (max 1000)");
  if (!class_names_in.empty() && int(class_names_in.size()) != k)
    fail("plot_confusion_matrix: got ", class_names_in.size(), " class names, expected ", k);
  int64_t total = 0, correct = 0;
  std::vector<int64_t> row_sum(static_cast<size_t>(k), 0);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      int64_t v = counts[size_t(i) * k + j];
      if (v < 0) fail("plot_confusion_matrix: negative count ", v, " at (", i, ", ", j, ")");
      row_sum[size_t(i)] += v;
      total += v;
      if (i == j) correct += v;
    }

  std::vector<std::string> names(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i)
    names[size_t(i)] = clip_name(class_names_in.empty() ? std::to_string(i) : class_names_in[size_t(i)], 18);

  // Geometry: cells shrink with k so the matrix stays around 640 px.
  const int cell = std::clamp(640 / k, 6, 110);
  const int ls = cell >= 18 ? 2 : 1;  // label scale
  int name_w = 0;
  for (const auto& n : names) name_w = std::max(name_w, Canvas::text_width(n, ls));
  const bool show_names = cell >= 8;
  if (!show_names) name_w = 0;

  const int mx = 20 + 14 + 16 + name_w + 12;  // "true class" label, names, gap
  const int my = 120;
  const int msize = k * cell;
  const int bar_x = mx + msize + 36, bar_w = 22;
  const int right_edge = bar_x + bar_w + 10 + Canvas::text_width("100%", 2) + 24;

  std::string head = title.empty() ? std::string("confusion matrix") : title;
  std::string sub;
  if (total > 0)
    sub = "accuracy " + format_value(100.0 * double(correct) / double(total), 2) + "%  (" + std::to_string(correct) +
          " / " + std::to_string(total) + ")";
  else
    sub = "no samples";
  const int W = std::max({right_edge, Canvas::text_width(head, 3) + 40, Canvas::text_width(sub, 2) + 40});
  const int H = my + msize + 12 + name_w + 18 + 14 + 24;
  Canvas c(W, H, kWhite);

  c.text(W / 2, 22, head, 3, kInk, Align::center, VAlign::top);
  c.text(W / 2, 60, sub, 2, kMuted, Align::center, VAlign::top);

  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const int64_t v = counts[size_t(i) * k + j];
      const double f = row_sum[size_t(i)] > 0 ? double(v) / double(row_sum[size_t(i)]) : 0.0;
      const Rgb bg = heat_color(f);
      const int x = mx + j * cell, y = my + i * cell;
      c.fill_rect(x, y, cell - 1, cell - 1, bg);  // 1 px white gutter separates cells
      const std::string s = std::to_string(v);
      int ts = 0;
      if (cell >= 24 && Canvas::text_width(s, 2) <= cell - 8)
        ts = 2;
      else if (cell >= 11 && Canvas::text_width(s, 1) <= cell - 4)
        ts = 1;
      if (ts == 0) continue;
      const Rgb fg = v == 0 ? Rgb{175, 175, 175} : is_dark(bg) ? kWhite : kInk;
      c.text(x + (cell - 1) / 2 + 1, y + (cell - 1) / 2, s, ts, fg, Align::center, VAlign::middle);
    }
  }
  c.rect_outline(mx - 1, my - 1, msize + 1, msize + 1, 1, kFrame);

  if (show_names) {
    for (int i = 0; i < k; ++i) {
      const int cy = my + i * cell + cell / 2;
      c.text(mx - 10, cy, names[size_t(i)], ls, kInk, Align::right, VAlign::middle);
      const int cx = mx + i * cell + cell / 2;
      c.text_vertical(cx, my + msize + 10, names[size_t(i)], ls, kInk, Align::right, VAlign::middle);
    }
  }
  c.text_vertical(20, my + msize / 2, "true class", 2, kMuted, Align::center, VAlign::top);
  c.text(mx + msize / 2, my + msize + 12 + name_w + 18, "predicted class", 2, kMuted, Align::center, VAlign::top);

  // Colour bar for the row-normalised shading.
  for (int y = 0; y < msize; ++y) c.fill_rect(bar_x, my + y, bar_w, 1, heat_color(1.0 - double(y) / std::max(msize - 1, 1)));
  c.rect_outline(bar_x - 1, my - 1, bar_w + 2, msize + 2, 1, kFrame);
  for (int p = 0; p <= 100; p += 25) {
    const int y = my + int(std::lround((100 - p) / 100.0 * (msize - 1)));
    c.fill_rect(bar_x + bar_w, y, 5, 1, kAxis);
    c.text(bar_x + bar_w + 9, y, std::to_string(p) + "%", msize >= 160 ? 2 : 1, kInk, Align::left, VAlign::middle);
  }
  // Shading is per true class (row), so a rare class still shows its errors.
  c.text(bar_x + bar_w / 2, my - 14, "row %", 2, kMuted, Align::center, VAlign::bottom);

  write_png(png_path, c.image());
}

}  // namespace mmkit
