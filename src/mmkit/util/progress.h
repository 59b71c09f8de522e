// A progress line for long work (training epochs, embedding a dataset, evaluation).
//
//   mmkit::Progress::Options o;
//   o.unit = "img/s";
//   mmkit::Progress p("epoch 3", n_images, stderr, o);
//   for (...) { ...; p.update(done, "loss 0.4123"); }
//   p.finish();
//
// On a terminal it redraws one line with '\r' at most every `tty_interval` seconds:
//   epoch 3 [##########----------]  6016/60000  435.2 img/s  00:13<01:41  loss 0.4123
// Elsewhere (CI logs, pipes, files) it prints a full line at most every `plain_interval` seconds and
// when the work is done, never '\r'. MMKIT_PROGRESS=tty|plain|off in the environment overrides the
// isatty() detection. The rate is the average since construction; ETA = remaining / rate.
// Not thread-safe: one thread reports.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

namespace mmkit {

enum class ProgressMode { tty, plain, off };

// Declared outside Progress so it can be a default argument of its constructor.
struct ProgressOptions {
  std::string unit = "it/s";            // rate unit, e.g. "img/s", "batch/s"
  double plain_interval = 10;           // seconds between plain lines
  double tty_interval = 0.1;            // seconds between redraws on a terminal
  std::optional<ProgressMode> mode;     // set: used as is (ignores MMKIT_PROGRESS and isatty)
  std::function<double()> clock;        // monotonic seconds, injectable so tests need not sleep;
                                        // default: std::chrono::steady_clock
};

class Progress {
 public:
  using Mode = ProgressMode;
  using Options = ProgressOptions;

  // total <= 0 means unknown: no bar, percentage or ETA.
  Progress(std::string label, int64_t total, std::FILE* out = stderr, Options opts = Options());
  ~Progress();  // on a terminal, ends an unfinished line so later output starts on its own line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` items of `total` are complete; `extra` is appended to the line (e.g. "loss 0.4123").
  // Reaching total prints immediately.
  void update(int64_t done, const std::string& extra = "");
  // Prints the final line (unless update() already printed this exact state) and ends it.
  void finish(const std::string& extra = "");

  Mode mode() const { return mode_; }
  // MMKIT_PROGRESS if set to tty/plain/off, else tty when `out` is a terminal, else plain.
  static Mode detect_mode(std::FILE* out);
  // "mm:ss", or "h:mm:ss" from one hour on.
  static std::string format_duration(double seconds);

 private:
  std::string line(double now) const;
  void emit(double now);

  std::string label_;
  int64_t total_;
  std::FILE* out_;
  Options opts_;
  Mode mode_;
  double start_;
  double last_emit_;         // time of the last line printed (start_ for plain, -inf for tty)
  int64_t done_ = 0;
  std::string extra_;
  int64_t emitted_done_ = -1;  // state of the last printed line, to avoid repeating it at finish()
  std::string emitted_extra_;
  size_t last_width_ = 0;      // tty: length of the drawn line, to blank leftovers when it shrinks
  bool line_open_ = false;     // tty: a line is drawn without its '\n'
  bool finished_ = false;
};

}  // namespace mmkit
