// httplib::Request -> RequestBody (mmkit/serve/request_body.h): the one place
// the server's routes and fuzz/fuzz_http_request.cpp turn what httplib parsed
// (headers, body, multipart parts) into the library's request parser.
#pragma once
#include <httplib.h>

#include "mmkit/serve/request_body.h"

namespace mmkit::serve {

inline RequestBody request_body(const httplib::Request& req, const RequestLimits& lim) {
  if (req.is_multipart_form_data()) {
    std::vector<FormPart> parts;
    for (auto& [name, f] : req.files) parts.push_back({name, f.filename, f.content});
    return RequestBody::from_form(parts, lim);
  }
  return RequestBody::from_body(req.get_header_value("Content-Type"), req.body, lim);
}

}  // namespace mmkit::serve
