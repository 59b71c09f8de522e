// Typed reads from JSON configs (model configs in safetensors metadata, HF config.json) with errors
// that say where, which field, and what was found:
//   "vit.safetensors config: field 'dim': expected integer, got string"
//
//   nlohmann::json c = parse_json(meta.at("config"), path + " config");
//   int64_t dim = get_int(c, "dim", path + " config");
//   double eps  = get_double(c, "layer_norm_eps", path + " config", 1e-5);   // optional
//
// The default overloads treat a missing key and an explicit null alike (HF configs write null for
// "unset"); a present value of the wrong type is still an error.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "mmkit/core/error.h"

namespace mmkit {

namespace detail {
inline const char* json_kind(const nlohmann::json& j) {
  if (j.is_number_float()) return "float";
  if (j.is_number()) return "integer";
  return j.type_name();  // "string", "boolean", "null", "object", "array"
}
// The value at `key`, or nullptr when absent or null (only if `allow_absent`).
inline const nlohmann::json* json_field(const nlohmann::json& j, const char* key, const std::string& where,
                                        bool allow_absent) {
  if (!j.is_object()) fail(where, ": expected a JSON object, got ", json_kind(j));
  auto it = j.find(key);
  if (it == j.end() || (allow_absent && it->is_null())) {
    if (allow_absent) return nullptr;
    fail(where, ": config field '", key, "' is missing");
  }
  return &*it;
}
[[noreturn]] inline void json_type_error(const nlohmann::json& v, const char* key, const std::string& where,
                                         const char* expected) {
  fail(where, ": config field '", key, "': expected ", expected, ", got ", json_kind(v));
}
inline int64_t json_int(const nlohmann::json& v, const char* key, const std::string& where) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(where, ": config field '", key, "': ", v.dump(), " does not fit in int64");
  if (!v.is_number_integer()) json_type_error(v, key, where, "integer");  // 512.0 is rejected too
  return v.get<int64_t>();
}
inline double json_double(const nlohmann::json& v, const char* key, const std::string& where) {
  if (!v.is_number()) json_type_error(v, key, where, "number");  // integers are fine: "eps": 0
  return v.get<double>();
}
inline std::string json_string(const nlohmann::json& v, const char* key, const std::string& where) {
  if (!v.is_string()) json_type_error(v, key, where, "string");
  return v.get<std::string>();
}
inline bool json_bool(const nlohmann::json& v, const char* key, const std::string& where) {
  if (!v.is_boolean()) json_type_error(v, key, where, "boolean");
  return v.get<bool>();
}
}  // namespace detail

// Parses `text` (e.g. a metadata string), rethrowing syntax errors as mmkit::Error naming `where`.
inline nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": invalid JSON: ", e.what());
  }
}

// Required fields: throw when missing (or null) or of the wrong type.
inline int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where) {
  return detail::json_int(*detail::json_field(j, key, where, false), key, where);
}
inline double get_double(const nlohmann::json& j, const char* key, const std::string& where) {
  return detail::json_double(*detail::json_field(j, key, where, false), key, where);
}
inline std::string get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  return detail::json_string(*detail::json_field(j, key, where, false), key, where);
}
inline bool get_bool(const nlohmann::json& j, const char* key, const std::string& where) {
  return detail::json_bool(*detail::json_field(j, key, where, false), key, where);
}

// Optional fields: `def` when missing or null; still throw on a wrong type.
inline int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where, int64_t def) {
  const nlohmann::json* v = detail::json_field(j, key, where, true);
  return v ? detail::json_int(*v, key, where) : def;
}
inline double get_double(const nlohmann::json& j, const char* key, const std::string& where, double def) {
  const nlohmann::json* v = detail::json_field(j, key, where, true);
  return v ? detail::json_double(*v, key, where) : def;
}
inline std::string get_string(const nlohmann::json& j, const char* key, const std::string& where,
                              const std::string& def) {
  const nlohmann::json* v = detail::json_field(j, key, where, true);
  return v ? detail::json_string(*v, key, where) : def;
}
inline bool get_bool(const nlohmann::json& j, const char* key, const std::string& where, bool def) {
  const nlohmann::json* v = detail::json_field(j, key, where, true);
  return v ? detail::json_bool(*v, key, where) : def;
}

}  // namespace mmkit
