// An error a request handler reports to its client: HTTP status, a stable
// machine-readable code and a message naming the problem. The server turns it
// into {"error": {"code": ..., "message": ...}} with that status.
//
//   throw mmkit::serve::ApiError(413, "image_too_large", "images[0]: 5000x5000 = 25000000 pixels > 16000000");
#pragma once
#include <stdexcept>
#include <string>

#include "mmkit/core/error.h"

namespace mmkit::serve {

struct ApiError : std::runtime_error {
  int status;
  std::string code;
  ApiError(int status_, std::string code_, const std::string& message)
      : std::runtime_error(message), status(status_), code(std::move(code_)) {}
};

template <class... A>
[[noreturn]] void api_fail(int status, const std::string& code, const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  throw ApiError(status, code, os.str());
}

}  // namespace mmkit::serve
