// What the HTTP load programs (serve_load, serve_fault_load, ...) share: a /proc/PID/status reading
// of the server's memory and the seeded synthetic request images; where this binary lives (to find
// `mmkit` beside it) is bench_child.h's self_dir.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "bench_child.h"  // self_dir
#include "mmkit/core/rng.h"
#include "mmkit/image/canvas.h"

namespace mmkit::bench {

// kB of a /proc/PID/status field ("VmRSS:", "VmHWM:"); -1 if absent.
inline long proc_kb(pid_t pid, const char* field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field) + 1);
  return -1;
}

// Request image i (size x size): a light background, a disc and a square in seeded colours and places.
inline Image test_image(int i, int size) {
  Rng rng(77 + uint64_t(i));
  auto u8 = [&](int lo, int hi) { return uint8_t(lo + int(rng.uniform() * float(hi - lo))); };
  Canvas c(size, size, Rgb{u8(150, 255), u8(150, 255), u8(150, 255)});
  c.disc(size * (0.3 + 0.4 * rng.uniform()), size * (0.3 + 0.4 * rng.uniform()), size * 0.2, Rgb{u8(0, 255), 40, u8(0, 255)});
  c.fill_rect(int(size * rng.uniform() * 0.5), int(size * 0.6), size / 4, size / 4, Rgb{20, u8(0, 255), 60});
  return c.image();
}

}  // namespace mmkit::bench
