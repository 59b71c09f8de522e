// Progress line: plain (log) and terminal output, throttling, env override. A fake clock drives
// time, so nothing sleeps; output goes to a tmpfile (not a TTY).
#include "mmkit/util/progress.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>

using mmkit::Progress;

namespace {

struct Capture {
  std::FILE* f = std::tmpfile();
  ~Capture() { std::fclose(f); }
  std::string text() {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    char buf[1024];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
    return s;
  }
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find(sep, b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

Progress::Options fake(double* now, Progress::Mode mode) {
  Progress::Options o;
  o.clock = [now] { return *now; };
  o.mode = mode;
  return o;
}

// Restores MMKIT_PROGRESS after a test changes it.
struct EnvGuard {
  bool had;
  std::string old;
  EnvGuard() : had(std::getenv("MMKIT_PROGRESS") != nullptr), old(had ? std::getenv("MMKIT_PROGRESS") : "") {}
  ~EnvGuard() { had ? setenv("MMKIT_PROGRESS", old.c_str(), 1) : unsetenv("MMKIT_PROGRESS"); }
};

}  // namespace

TEST(Progress, PlainLinesAreThrottledAndFinal) {
  Capture cap;
  double t = 100;  // the clock's origin is arbitrary
  auto o = fake(&t, Progress::Mode::plain);
  o.unit = "img/s";
  {
    Progress p("train", 100, cap.f, o);
    EXPECT_EQ(p.mode(), Progress::Mode::plain);
    t = 101, p.update(10);                 // before the first interval: silent
    t = 110, p.update(50, "loss 0.5");     // 10 s: line
    t = 115, p.update(60);                 // silent
    t = 120, p.update(80);                 // line
    t = 121, p.update(100, "loss 0.1");    // done: line at once
    t = 122, p.update(100, "loss 0.1");    // same final state: not repeated
    p.finish();                            // already printed: nothing
    p.finish("ignored");                   // second finish is a no-op
    p.update(5);                           // after finish: ignored
  }
  const std::string out = cap.text();
  EXPECT_EQ(out.find('\r'), std::string::npos);
  const std::vector<std::string> want = {
      "train  50/100 (50.0%)  5.00 img/s  elapsed 00:10  eta 00:10  loss 0.5",
      "train  80/100 (80.0%)  4.00 img/s  elapsed 00:20  eta 00:05",
      "train  100/100 (100.0%)  4.76 img/s  elapsed 00:21  loss 0.1",
      ""};
  EXPECT_EQ(split(out, '\n'), want) << out;
}

TEST(Progress, PlainFinishPrintsNewStateAndCustomInterval) {
  Capture cap;
  double t = 0;
  auto o = fake(&t, Progress::Mode::plain);
  o.plain_interval = 2;
  {
    Progress p("eval", 1000, cap.f, o);
    t = 1, p.update(10);
    t = 2, p.update(20);  // 2 s interval: line
    t = 3, p.update(25);
    t = 40, p.finish("acc 0.91");  // stopped early: final line shows the real count
  }
  const std::vector<std::string> want = {
      "eval  20/1000 (2.0%)  10.0 it/s  elapsed 00:02  eta 01:38",
      "eval  25/1000 (2.5%)  0.62 it/s  elapsed 00:40  eta 26:00  acc 0.91",
      ""};
  EXPECT_EQ(split(cap.text(), '\n'), want);
}

TEST(Progress, UnknownTotalHasNoEta) {
  Capture cap;
  double t = 0;
  {
    Progress p("scan", 0, cap.f, fake(&t, Progress::Mode::plain));
    t = 12.5, p.update(250);
    p.finish();  // same state as the last line: nothing more
  }
  EXPECT_EQ(cap.text(), "scan  250  20.0 it/s  elapsed 00:12\n");
}

TEST(Progress, TtyRedrawsOneLineAtMostTenTimesASecond) {
  Capture cap;
  double t = 0;
  auto o = fake(&t, Progress::Mode::tty);
  o.unit = "img/s";
  {
    Progress p("train", 100, cap.f, o);
    t = 0.0, p.update(1);                     // first update draws immediately
    t = 0.05, p.update(2);                    // within 0.1 s: skipped
    t = 1.0, p.update(50, "loss 0.41234");    // drawn
    t = 1.05, p.update(51, "loss 0.4");       // skipped
    t = 2.0, p.update(60);                    // drawn, shorter: padded with spaces
    t = 2.5, p.finish();                      // drawn, then '\n'
  }
  const std::string out = cap.text();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(out.back(), '\n');
  const std::vector<std::string> draws = split(out.substr(0, out.size() - 1), '\r');
  const std::string l1 = "train [--------------------]  1/100  0.00 img/s  00:00<?";
  const std::string l2 = "train [##########----------]  50/100  50.0 img/s  00:01<00:01  loss 0.41234";
  const std::string l3 = "train [############--------]  60/100  30.0 img/s  00:02<00:01";
  const std::string l4 = "train [############--------]  60/100  24.0 img/s  00:02<00:01";
  const std::vector<std::string> want = {"", l1, l2, l3 + std::string(l2.size() - l3.size(), ' '), l4};
  EXPECT_EQ(draws, want) << out;
}

TEST(Progress, TtyDestructorEndsAnOpenLine) {
  Capture cap;
  double t = 0;
  {
    Progress p("x", 10, cap.f, fake(&t, Progress::Mode::tty));
    p.update(3);
  }  // e.g. unwinding from an exception: the next message must start on a new line
  const std::string out = cap.text();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front(), '\r');
  EXPECT_EQ(out.back(), '\n');
}

TEST(Progress, OffPrintsNothing) {
  Capture cap;
  double t = 0;
  {
    Progress p("x", 10, cap.f, fake(&t, Progress::Mode::off));
    t = 100, p.update(10, "y");
    p.finish("z");
  }
  EXPECT_EQ(cap.text(), "");
}

TEST(Progress, EnvironmentOverridesDetection) {
  EnvGuard guard;
  Capture cap;
  unsetenv("MMKIT_PROGRESS");
  EXPECT_EQ(Progress::detect_mode(cap.f), Progress::Mode::plain);  // a file is not a TTY
  setenv("MMKIT_PROGRESS", "tty", 1);
  EXPECT_EQ(Progress::detect_mode(cap.f), Progress::Mode::tty);
  setenv("MMKIT_PROGRESS", "off", 1);
  EXPECT_EQ(Progress::detect_mode(cap.f), Progress::Mode::off);
  {
    Progress p("x", 10, cap.f);  // no explicit mode: the environment decides
    EXPECT_EQ(p.mode(), Progress::Mode::off);
    p.update(10);
    p.finish();
  }
  EXPECT_EQ(cap.text(), "");
  setenv("MMKIT_PROGRESS", "plain", 1);
  EXPECT_EQ(Progress::detect_mode(cap.f), Progress::Mode::plain);
  setenv("MMKIT_PROGRESS", "bogus", 1);  // unknown values fall back to detection
  EXPECT_EQ(Progress::detect_mode(cap.f), Progress::Mode::plain);
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(Progress::format_duration(0), "00:00");
  EXPECT_EQ(Progress::format_duration(59.9), "00:59");
  EXPECT_EQ(Progress::format_duration(61), "01:01");
  EXPECT_EQ(Progress::format_duration(3599), "59:59");
  EXPECT_EQ(Progress::format_duration(3723), "1:02:03");
  EXPECT_EQ(Progress::format_duration(-5), "00:00");
  EXPECT_EQ(Progress::format_duration(NAN), "00:00");
  EXPECT_EQ(Progress::format_duration(INFINITY), "00:00");
}
