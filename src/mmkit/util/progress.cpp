#include "mmkit/util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace mmkit {

Progress::Progress(std::string label, int64_t total, std::FILE* out, Options opts)
    : label_(std::move(label)), total_(total), out_(out), opts_(std::move(opts)) {
  if (!opts_.clock)
    opts_.clock = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
  mode_ = !out_ ? Mode::off : opts_.mode ? *opts_.mode : detect_mode(out_);
  start_ = opts_.clock();
  // A terminal shows the line at once; a log gets its first line only after one interval, so short
  // jobs print just their final line.
  last_emit_ = mode_ == Mode::tty ? -std::numeric_limits<double>::infinity() : start_;
}

Progress::~Progress() {
  if (line_open_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

Progress::Mode Progress::detect_mode(std::FILE* out) {
  if (const char* e = std::getenv("MMKIT_PROGRESS")) {
    if (!std::strcmp(e, "tty")) return Mode::tty;
    if (!std::strcmp(e, "plain")) return Mode::plain;
    if (!std::strcmp(e, "off")) return Mode::off;
  }
  return out && isatty(fileno(out)) ? Mode::tty : Mode::plain;
}

std::string Progress::format_duration(double seconds) {
  long s = std::isfinite(seconds) && seconds > 0 ? static_cast<long>(seconds) : 0;
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

void Progress::update(int64_t done, const std::string& extra) {
  if (mode_ == Mode::off || finished_) return;
  done_ = done;
  extra_ = extra;
  const double now = opts_.clock();
  const bool complete = total_ > 0 && done >= total_ && done != emitted_done_;
  const double interval = mode_ == Mode::tty ? opts_.tty_interval : opts_.plain_interval;
  if (complete || now - last_emit_ >= interval) emit(now);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (mode_ == Mode::off) return;
  if (!extra.empty()) extra_ = extra;
  // A terminal redraws so the final elapsed time is exact; a log avoids a duplicate line.
  if (mode_ == Mode::tty || done_ != emitted_done_ || extra_ != emitted_extra_) emit(opts_.clock());
  if (line_open_) {
    std::fputc('\n', out_);
    std::fflush(out_);
    line_open_ = false;
  }
}

std::string Progress::line(double now) const {
  const double elapsed = std::max(0.0, now - start_);
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  const bool known = total_ > 0;
  char buf[64];
  std::string s = label_;
  if (known && mode_ == Mode::tty) {
    constexpr int kWidth = 20;
    const double frac = std::clamp(static_cast<double>(done_) / static_cast<double>(total_), 0.0, 1.0);
    const int fill = static_cast<int>(frac * kWidth);
    s += " [" + std::string(fill, '#') + std::string(kWidth - fill, '-') + "]";
  }
  s += "  " + std::to_string(done_);
  if (known) {
    s += "/" + std::to_string(total_);
    if (mode_ == Mode::plain) {
      std::snprintf(buf, sizeof buf, " (%.1f%%)", 100.0 * static_cast<double>(done_) / static_cast<double>(total_));
      s += buf;
    }
  }
  std::snprintf(buf, sizeof buf, rate < 10 ? "  %.2f " : "  %.1f ", rate);
  s += buf + opts_.unit;

  // ETA only while work remains and a rate is known.
  std::string eta;
  if (known && done_ < total_)
    eta = rate > 0 ? format_duration(static_cast<double>(total_ - done_) / rate) : "?";
  if (mode_ == Mode::tty)
    s += "  " + format_duration(elapsed) + (eta.empty() ? "" : "<" + eta);
  else
    s += "  elapsed " + format_duration(elapsed) + (eta.empty() ? "" : "  eta " + eta);
  if (!extra_.empty()) s += "  " + extra_;
  return s;
}

void Progress::emit(double now) {
  std::string s = line(now);
  if (mode_ == Mode::tty) {
    const size_t width = s.size();
    if (width < last_width_) s.append(last_width_ - width, ' ');  // blank what the old line left
    std::fputc('\r', out_);
    std::fputs(s.c_str(), out_);
    last_width_ = width;
    line_open_ = true;
  } else {
    s += '\n';
    std::fputs(s.c_str(), out_);
  }
  std::fflush(out_);
  last_emit_ = now;
  emitted_done_ = done_;
  emitted_extra_ = extra_;
}

}  // namespace mmkit
