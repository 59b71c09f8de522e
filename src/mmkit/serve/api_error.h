// An error a request handler reports to its client: HTTP status, a stable
// machine-readable code and a message naming the problem. The server turns it
// into {"error": {"code", "message", "type", "param"}} with that status (OpenAI's
// error shape: "type" follows from the status, "param" names the field or is null).
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
  std::string param;  // the request field at fault, when one is (OpenAI's error "param"); "" = none
  ApiError(int status_, std::string code_, const std::string& message, std::string param_ = "")
      : std::runtime_error(message), status(status_), code(std::move(code_)), param(std::move(param_)) {}
};

// The same, naming the request field at fault.
template <class... A>
[[noreturn]] void api_fail_param(int status, const std::string& code, const std::string& param, const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  throw ApiError(status, code, os.str(), param);
}

template <class... A>
[[noreturn]] void api_fail(int status, const std::string& code, const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  throw ApiError(status, code, os.str());
}

}  // namespace mmkit::serve
