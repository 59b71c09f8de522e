// One exception type for every user-facing failure. Messages name the thing
// that is wrong (file, tensor, shape) so the CLI can print them verbatim and
// exit non-zero.
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

}  // namespace mmkit
