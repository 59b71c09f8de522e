#include "mmkit/serve/request_body.h"

#include "mmkit/serve/api_error.h"

namespace mmkit::serve {

using json = nlohmann::json;

RequestBody RequestBody::from_body(const std::string& ct, const std::string& body, const RequestLimits& lim) {
  RequestBody b(lim);
  if (ct.rfind("application/json", 0) != 0 && !(ct.empty() && !body.empty() && body[0] == '{'))
    api_fail(415, "unsupported_media_type", "Content-Type '", ct, "': send application/json or multipart/form-data");
  if (body.empty()) api_fail(400, "bad_request", "empty request body; expected a JSON object");
  try {
    b.j_ = json::parse(body);
  } catch (const json::exception& e) {
    api_fail(400, "bad_json", "request body is not valid JSON: ", e.what());
  }
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

std::vector<Image> RequestBody::images() const {
  std::vector<Image> out;
  int i = 0;
  if (multipart_) {
    for (auto& [name, bytes] : files_) {
      if (name != "image" && name != "images") continue;
      std::string field = name + "[" + std::to_string(i++) + "]";
      out.push_back(decode_request_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), lim_, field));
    }
    return out;
  }
  for (const char* k : {"image", "images"}) {
    std::vector<std::string> b64 = strings(k);
    for (size_t n = 0; n < b64.size(); ++n) {
      std::string field = std::string(k) + (std::string(k) == "images" ? "[" + std::to_string(n) + "]" : "");
      std::vector<uint8_t> bytes = decode_base64(b64[n], field);
      out.push_back(decode_request_image(bytes.data(), bytes.size(), lim_, field));
    }
  }
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
