// The body of an API request — a JSON object, or multipart/form-data fields and
// files — with typed accessors that refuse bad input with 4xx ApiErrors naming
// the field. Pure (no sockets, no httplib): apps/serve/request_adapter.h builds
// one from an httplib::Request, and fuzz/fuzz_http_request.cpp drives the same
// code with raw HTTP bytes.
//
//   RequestBody b = RequestBody::from_body("application/json", R"({"texts": ["a cat"]})", limits);
//   std::vector<std::string> t = b.texts("texts", "text");   // validated (non-empty, UTF-8, length)
//   std::vector<Image> im = b.images();                       // base64 (JSON) or uploaded files (multipart)
//
// Errors: 415 unsupported_media_type (not JSON/multipart), 400 bad_request /
// bad_json (empty, malformed or non-object body, a NUL byte, nesting deeper than
// max_json_depth or more than max_json_elements values, wrong field types), plus
// the image/text/base64 errors of request_limits.h.
//
// Images are decoded one at a time (image(i)), so a request's decoded pixels
// are one image's at any moment: a caller preprocesses image i and drops it
// before decoding image i + 1 (64 images of 16 Mpx were 3 GB when all were
// decoded first).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/serve/request_limits.h"

namespace mmkit::serve {

// One multipart/form-data part (already split by the HTTP layer).
struct FormPart {
  std::string name, filename, content;
};

class RequestBody {
 public:
  // A non-multipart body: must be application/json (or have no Content-Type and start with '{').
  static RequestBody from_body(const std::string& content_type, const std::string& body, const RequestLimits& lim);
  // multipart/form-data: parts with a filename, or named image/images, are files; the rest fields.
  static RequestBody from_form(const std::vector<FormPart>& parts, const RequestLimits& lim);

  bool has(const std::string& k) const;
  // Strings under `k` (a string or an array of strings; multipart: every field named k).
  std::vector<std::string> strings(const std::string& k) const;
  // A list given as a JSON array or as one comma-separated string ("cat, dog").
  std::vector<std::string> list(const std::string& k) const;
  // At most one string; "" when absent.
  std::string str(const std::string& k) const;
  int64_t integer(const std::string& k, int64_t def, int64_t lo, int64_t hi) const;
  double number(const std::string& k, double def, double lo, double hi) const;  // NaN is outside any range
  bool boolean(const std::string& k, bool def) const;
  // Images under "image"/"images": base64 strings in JSON, files in multipart.
  size_t image_count() const;
  Image image(size_t i) const;       // decodes the i-th (base64 and pixels freed with the Image)
  std::vector<Image> images() const;  // all of them decoded: for routes that take one
  // The JSON value under `k` (null when absent). In multipart the field's text is parsed as JSON
  // with the body's bounds; invalid JSON is a 400 with `code`, naming the field.
  nlohmann::json json_field(const std::string& k, const std::string& code) const;
  // Strings under a and b, each checked by check_text (field named a[i]).
  std::vector<std::string> texts(const char* a, const char* b) const;

 private:
  explicit RequestBody(const RequestLimits& lim) : lim_(lim) {}
  RequestLimits lim_;
  bool multipart_ = false;
  nlohmann::json j_;
  std::vector<std::pair<std::string, std::string>> fields_, files_;
};

// json::parse of `text` bounded by lim.max_json_depth and lim.max_json_elements while it parses;
// 400 `code` naming `what` when it is not JSON or exceeds them.
nlohmann::json parse_bounded_json(const std::string& text, const RequestLimits& lim, const std::string& what,
                                  const std::string& code);

// j.dump() that cannot throw: invalid UTF-8 inside strings (a client's bytes
// quoted in an error message) becomes U+FFFD instead of a json::type_error.
std::string json_text(const nlohmann::json& j);

}  // namespace mmkit::serve
