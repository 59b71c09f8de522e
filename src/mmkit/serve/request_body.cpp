#include "mmkit/serve/request_body.h"

#include <cctype>

#include "mmkit/serve/api_error.h"

namespace mmkit::serve {

using json = nlohmann::json;

namespace {

// "application/json", alone or with parameters ("; charset=utf-8"), any case; not "application/jsonfoo".
bool is_json_media_type(const std::string& ct) {
  static const std::string J = "application/json";
  if (ct.size() < J.size()) return false;
  for (size_t i = 0; i < J.size(); ++i)
    if (std::tolower(uint8_t(ct[i])) != J[i]) return false;
  return ct.size() == J.size() || ct[J.size()] == ';' || ct[J.size()] == ' ' || ct[J.size()] == '\t';
}

}  // namespace

json parse_bounded_json(const std::string& text, const RequestLimits& lim, const std::string& what,
                        const std::string& code) {
  // Depth and element count are checked while parsing, so a body of a million {} is refused
  // after max_json_elements values instead of costing ~40 bytes of tree per input byte.
  size_t elements = 0;
  auto bound = [&](int depth, json::parse_event_t ev, json&) {
    if (size_t(depth) > lim.max_json_depth)
      api_fail(400, code, what, " is nested deeper than ", lim.max_json_depth, " levels");
    if ((ev == json::parse_event_t::value || ev == json::parse_event_t::object_start ||
         ev == json::parse_event_t::array_start) &&
        ++elements > lim.max_json_elements)
      api_fail(400, code, what, " has more than ", lim.max_json_elements, " JSON values");
    return true;
  };
  try {
    return json::parse(text, bound);
  } catch (const json::exception& e) {
    api_fail(400, code, what, " is not valid JSON: ", e.what());
  }
}

json RequestBody::json_field(const std::string& k, const std::string& code) const {
  if (!multipart_) return j_.contains(k) ? j_[k] : json();
  const std::string s = str(k);
  if (s.empty()) return json();
  if (const size_t nul = s.find('\0'); nul != std::string::npos)
    api_fail(400, code, "'", k, "' is not valid JSON: NUL byte at offset ", nul);
  return parse_bounded_json(s, lim_, "'" + k + "'", code);
}

RequestBody RequestBody::from_body(const std::string& ct, const std::string& body, const RequestLimits& lim) {
  RequestBody b(lim);
  if (!is_json_media_type(ct) && !(ct.empty() && !body.empty() && body[0] == '{'))
    api_fail(415, "unsupported_media_type", "Content-Type '", ct, "': send application/json or multipart/form-data");
  if (body.empty()) api_fail(400, "bad_request", "empty request body; expected a JSON object");
  // nlohmann reads a std::string up to its first NUL: what follows would be ignored silently.
  if (const size_t nul = body.find('\0'); nul != std::string::npos)
    api_fail(400, "bad_json", "request body is not valid JSON: NUL byte at offset ", nul);
  b.j_ = parse_bounded_json(body, lim, "request body", "bad_json");
  if (!b.j_.is_object()) api_fail(400, "bad_json", "request body must be a JSON object, got ", b.j_.type_name());
  return b;
}

RequestBody RequestBody::from_form(const std::vector<FormPart>& parts, const RequestLimits& lim) {
  RequestBody b(lim);
  b.multipart_ = true;
  for (const FormPart& p : parts) {
    if (!p.filename.empty() || p.name == "image" || p.name == "images")
      b.files_.emplace_back(p.name, p.content);
    else
      b.fields_.emplace_back(p.name, p.content);
  }
  return b;
}

bool RequestBody::has(const std::string& k) const {
  if (multipart_) {
    for (auto& f : fields_)
      if (f.first == k) return true;
    for (auto& f : files_)
      if (f.first == k) return true;
    return false;
  }
  return j_.contains(k) && !j_[k].is_null();
}

std::vector<std::string> RequestBody::strings(const std::string& k) const {
  std::vector<std::string> out;
  if (multipart_) {
    for (auto& f : fields_)
      if (f.first == k) out.push_back(f.second);
    return out;
  }
  if (!j_.contains(k) || j_[k].is_null()) return out;
  const json& v = j_[k];
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) api_fail(400, "bad_request", "'", k, "' must be a string or an array of strings");
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) api_fail(400, "bad_request", k, "[", i, "] must be a string, got ", v[i].type_name());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<std::string> RequestBody::list(const std::string& k) const {
  std::vector<std::string> raw = strings(k), out;
  const bool split = multipart_ || (j_.contains(k) && j_[k].is_string());
  for (auto& s : raw) {
    if (!split) {
      out.push_back(s);
      continue;
    }
    size_t a = 0;
    while (a <= s.size()) {
      size_t b = s.find(',', a);
      if (b == std::string::npos) b = s.size();
      std::string part = s.substr(a, b - a);
      part.erase(0, part.find_first_not_of(" \t\r\n"));
      part.erase(part.find_last_not_of(" \t\r\n") + 1);
      if (!part.empty()) out.push_back(part);
      a = b + 1;
    }
  }
  return out;
}

std::string RequestBody::str(const std::string& k) const {
  auto v = strings(k);
  if (v.size() > 1) api_fail(400, "bad_request", "'", k, "' must be a single string");
  return v.empty() ? std::string() : v[0];
}

int64_t RequestBody::integer(const std::string& k, int64_t def, int64_t lo, int64_t hi) const {
  int64_t v = def;
  if (multipart_) {
    std::string s = str(k);
    if (s.empty()) return def;
    try {
      size_t pos = 0;
      v = std::stoll(s, &pos);
      if (pos != s.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      api_fail(400, "bad_request", "'", k, "' must be an integer, got '", s, "'");
    }
  } else if (j_.contains(k) && !j_[k].is_null()) {
    if (!j_[k].is_number_integer()) api_fail(400, "bad_request", "'", k, "' must be an integer");
    v = j_[k].get<int64_t>();
  }
  if (v < lo || v > hi) api_fail(400, "bad_request", "'", k, "' = ", v, " is outside [", lo, ", ", hi, "]");
  return v;
}

double RequestBody::number(const std::string& k, double def, double lo, double hi) const {
  double v = def;
  if (multipart_) {
    std::string s = str(k);
    if (s.empty()) return def;
    try {
      size_t pos = 0;
      v = std::stod(s, &pos);
      if (pos != s.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      api_fail(400, "bad_request", "'", k, "' must be a number, got '", s, "'");
    }
  } else if (j_.contains(k) && !j_[k].is_null()) {
    if (!j_[k].is_number()) api_fail(400, "bad_request", "'", k, "' must be a number");
    v = j_[k].get<double>();
  }
  if (!(v >= lo && v <= hi)) api_fail(400, "bad_request", "'", k, "' = ", v, " is outside [", lo, ", ", hi, "]");
  return v;
}

bool RequestBody::boolean(const std::string& k, bool def) const {
  if (multipart_) {
    std::string s = str(k);
    if (s.empty()) return def;
    if (s == "true" || s == "1") return true;
    if (s == "false" || s == "0") return false;
    api_fail(400, "bad_request", "'", k, "' must be true or false, got '", s, "'");
  }
  if (!j_.contains(k) || j_[k].is_null()) return def;
  if (!j_[k].is_boolean()) api_fail(400, "bad_request", "'", k, "' must be true or false");
  return j_[k].get<bool>();
}

size_t RequestBody::image_count() const {
  size_t n = 0;
  if (multipart_) {
    for (auto& f : files_) n += f.first == "image" || f.first == "images";
    return n;
  }
  for (const char* k : {"image", "images"})
    if (j_.contains(k) && !j_[k].is_null()) n += j_[k].is_array() ? j_[k].size() : 1;
  return n;
}

Image RequestBody::image(size_t i) const {
  if (multipart_) {
    size_t seen = 0;
    for (auto& [name, bytes] : files_) {
      if (name != "image" && name != "images") continue;
      if (seen++ != i) continue;
      const std::string field = name + "[" + std::to_string(i) + "]";
      return decode_request_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), lim_, field);
    }
    api_fail(400, "bad_request", "no image ", i);
  }
  size_t base = 0;
  for (const char* k : {"image", "images"}) {
    if (!j_.contains(k) || j_[k].is_null()) continue;
    const json& v = j_[k];
    const size_t n = v.is_array() ? v.size() : 1;
    if (i >= base + n) {
      base += n;
      continue;
    }
    const size_t at = i - base;
    const json& e = v.is_array() ? v[at] : v;
    const std::string field = std::string(k) + (v.is_array() ? "[" + std::to_string(at) + "]" : "");
    if (!v.is_string() && !v.is_array()) api_fail(400, "bad_request", "'", k, "' must be a string or an array of strings");
    if (!e.is_string()) api_fail(400, "bad_request", field, " must be a string, got ", e.type_name());
    std::vector<uint8_t> bytes = decode_base64(e.get_ref<const std::string&>(), field);
    return decode_request_image(bytes.data(), bytes.size(), lim_, field);
  }
  api_fail(400, "bad_request", "no image ", i);
}

std::vector<Image> RequestBody::images() const {
  std::vector<Image> out;
  for (size_t i = 0, n = image_count(); i < n; ++i) out.push_back(image(i));
  return out;
}

std::vector<std::string> RequestBody::texts(const char* a, const char* b) const {
  std::vector<std::string> out = strings(a), more = strings(b);
  out.insert(out.end(), more.begin(), more.end());
  for (size_t i = 0; i < out.size(); ++i) check_text(out[i], lim_, std::string(a) + "[" + std::to_string(i) + "]");
  return out;
}

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace mmkit::serve
