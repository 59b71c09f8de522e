// Bearer tokens a server accepts (`mmkit serve --api-key-file FILE`): one key per
// line; blank lines and lines starting with '#' are ignored, surrounding
// whitespace is trimmed. Only SHA-256 digests of the keys are kept, and a
// presented token is compared with every digest in constant time (the time
// depends on the number of keys, not on which bytes match or on the key
// lengths), so that timing reveals nothing about a key.
//
//   ApiKeys keys = ApiKeys::load("keys.txt");
//   bool ok = keys.allows(req.get_header_value("Authorization"));   // "Bearer <key>"
//
// Keys never appear in error messages: a malformed file is named by path and
// line number only.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mmkit::serve {

class ApiKeys {
 public:
  ApiKeys() = default;
  // Throws mmkit::Error if the file cannot be read, holds no key, or a key has
  // whitespace or control characters inside it (a pasted line break, a tab).
  static ApiKeys load(const std::string& path);
  // Keys given directly (tests, embedding): the same rules as a file's lines.
  static ApiKeys from_lines(const std::string& text, const std::string& source);

  bool empty() const { return digests_.empty(); }
  size_t size() const { return digests_.size(); }
  // True if `authorization` is "Bearer <token>" (scheme case-insensitive) and
  // the token is one of the keys.
  bool allows(std::string_view authorization) const;

 private:
  std::vector<std::array<uint8_t, 32>> digests_;
};

}  // namespace mmkit::serve
