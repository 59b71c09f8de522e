#include "mmkit/serve/api_keys.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "mmkit/core/error.h"
#include "mmkit/util/sha256.h"

namespace mmkit::serve {

namespace {

std::array<uint8_t, 32> digest_of(std::string_view s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return h.digest();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

ApiKeys ApiKeys::from_lines(const std::string& text, const std::string& source) {
  ApiKeys k;
  size_t line_no = 0;
  for (size_t a = 0; a <= text.size();) {
    size_t e = text.find('\n', a);
    if (e == std::string::npos) e = text.size();
    ++line_no;
    const std::string_view line = trim(std::string_view(text).substr(a, e - a));
    a = e + 1;
    if (line.empty() || line.front() == '#') continue;
    for (char c : line)
      MMKIT_CHECK(!std::isspace(static_cast<unsigned char>(c)) && !std::iscntrl(static_cast<unsigned char>(c)),
                  source, ":", line_no, ": a key must be one token without spaces or control characters "
                  "(one key per line; '#' starts a comment line)");
    k.digests_.push_back(digest_of(line));
  }
  MMKIT_CHECK(!k.digests_.empty(), source, ": no API key in it (one key per line; blank lines and '#' lines are ignored)");
  return k;
}

ApiKeys ApiKeys::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f, path, ": cannot open the API key file");
  std::ostringstream os;
  os << f.rdbuf();
  MMKIT_CHECK(!f.bad(), path, ": cannot read the API key file");
  return from_lines(os.str(), path);
}

bool ApiKeys::allows(std::string_view authorization) const {
  authorization = trim(authorization);
  static constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  const std::array<uint8_t, 32> d = digest_of(trim(authorization.substr(kScheme.size())));
  // Every key is compared, every byte of each: no early exit on a match or a difference.
  uint8_t any = 0;
  for (const auto& key : digests_) {
    uint8_t diff = 0;
    for (size_t i = 0; i < d.size(); ++i) diff |= uint8_t(key[i] ^ d[i]);
    any |= uint8_t(diff == 0);
  }
  return any != 0;
}

}  // namespace mmkit::serve
