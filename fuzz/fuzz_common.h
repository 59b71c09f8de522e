// Shared by the fuzz targets: the contract every parser is held to.
//
// A hostile input may be rejected only with mmkit::Error carrying a message; anything else that
// leaves the parser (std::bad_alloc, nlohmann exceptions, std::out_of_range, ...) escapes the
// harness, and libFuzzer reports it as a crash, as it does ASan/UBSan reports, leaks and hangs.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mmkit/core/error.h"

namespace mmkit::fuzz {

// Runs f(); true if it returned, false if it threw mmkit::Error (with a non-empty message).
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const mmkit::Error& e) {
    if (std::string(e.what()).empty()) {
      std::fprintf(stderr, "mmkit::Error without a message\n");
      std::abort();
    }
    return false;
  }
}

// An invariant of the parser's own output (e.g. a round trip) does not hold.
[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

}  // namespace mmkit::fuzz
