// Two kinds of failure. User errors (bad file, field, shape) throw mmkit::Error
// through MMKIT_CHECK / fail() with a message naming the thing that is wrong, so
// the CLI can print it verbatim and exit non-zero. Broken internal invariants
// (a bug in mmkit, not in the input) throw mmkit::InternalError through
// MMKIT_ASSERT, whose message is the failed expression with file:line.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mmkit {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void cat(std::ostringstream&) {}
template <class T, class... R>
void cat(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  cat(os, r...);
}
}  // namespace detail

// fail("tensor ", name, ": got ", a, ", expected ", b) throws mmkit::Error.
template <class... A>
[[noreturn]] void fail(const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  throw Error(os.str());
}

#define MMKIT_CHECK(cond, ...)            \
  do {                                    \
    if (!(cond)) ::mmkit::fail(__VA_ARGS__); \
  } while (0)

// Not derived from Error: callers that handle user errors (a bad request, a bad
// file) must not swallow a bug. The CLI still prints it (it catches std::exception).
struct InternalError : std::logic_error {
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

// Cold and never inlined: an assertion costs its caller one compare and branch.
[[noreturn, gnu::cold, gnu::noinline]] inline void assert_failed(const char* expr, const char* file, int line) {
  std::ostringstream os;
  os << "internal error: MMKIT_ASSERT(" << expr << ") failed at " << file << ":" << line;
  throw InternalError(os.str());
}

// Internal invariants only (never input validation); active in every build type.
#define MMKIT_ASSERT(cond)                                                            \
  do {                                                                                \
    if (__builtin_expect(!(cond), 0)) ::mmkit::assert_failed(#cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace mmkit
