#include "mmkit/text/utf8.h"

#include "mmkit/core/error.h"

namespace mmkit::text {

namespace {

// Length of a well-formed sequence starting at s[i], writing its code point; 0 if ill-formed.
// Per lead byte, the second byte's valid range excludes overlongs (E0, F0) and surrogates (ED)
// and code points above U+10FFFF (F4), as in the Unicode Standard's Table 3-7. `prefix` receives
// the length of the maximal well-formed prefix when the sequence is ill-formed (at least 1).
size_t decode_one(const unsigned char* s, size_t n, char32_t& cp, size_t& prefix) {
  unsigned char b0 = s[0];
  prefix = 1;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (k >= n) return 0;
    unsigned char b = s[k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    cp = (cp << 6) | (b & 0x3F);
    prefix = k + 1;
  }
  return len;
}

}  // namespace

std::u32string utf8_decode(const std::string& bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size(), i = 0;
  while (i < n) {
    if (s[i] < 0x80) {  // ASCII fast path
      out.push_back(s[i++]);
      continue;
    }
    char32_t cp;
    size_t prefix;
    size_t len = decode_one(s + i, n - i, cp, prefix);
    if (len == 0) fail("text is not valid UTF-8 at byte ", i);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) utf8_append(out, c);
  return out;
}

std::string utf8_repair(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size(), i = 0;
  while (i < n) {
    char32_t cp;
    size_t prefix;
    size_t len = decode_one(s + i, n - i, cp, prefix);
    if (len == 0) {
      utf8_append(out, 0xFFFD);
      i += prefix;
    } else {
      out.append(bytes, i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace mmkit::text
