#include "mmkit/text/html_unescape.h"

#include <algorithm>
#include <cstring>

#include "mmkit/text/html_entities.h"
#include "mmkit/text/utf8.h"

namespace mmkit::text {

namespace {

// Entity value for an ASCII name (with or without ';'), or nullptr.
const char* find_entity(const std::string& name) {
  const HtmlEntity* b = kHtmlEntities;
  const HtmlEntity* e = kHtmlEntities + kHtmlEntityCount;
  const HtmlEntity* it = std::lower_bound(b, e, name, [](const HtmlEntity& a, const std::string& n) {
    return std::strcmp(a.name, n.c_str()) < 0;
  });
  return (it != e && name == it->name) ? it->value : nullptr;
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char32_t c) { return is_digit(c) ? int(c - '0') : int((c | 0x20) - 'a' + 10); }

// HTML5 "numeric character reference end state" as Python implements it. `num` saturates at
// 0x110000 (anything above U+10FFFF behaves the same). Returns false to emit nothing.
bool numeric_reference(uint32_t num, char32_t& out) {
  // Windows-1252 for 0x80..0x9F; 0 means "keep the C1 control" (0x81 0x8D 0x8F 0x90 0x9D).
  static const char16_t kCp1252[32] = {
      0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
      0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};
  if (num == 0) { out = 0xFFFD; return true; }
  if (num == 0x0D) { out = 0x0D; return true; }
  if (num >= 0x80 && num <= 0x9F) {
    out = kCp1252[num - 0x80] ? kCp1252[num - 0x80] : num;
    return true;
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { out = 0xFFFD; return true; }
  bool invalid = (num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
                 num == 0x7F || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
  if (invalid) return false;
  out = num;
  return true;
}

// Matches  #[0-9]+;?  |  #[xX][0-9a-fA-F]+;?  at s[i] (just after '&'); returns the end or i.
size_t match_numeric(const std::u32string& s, size_t i, std::u32string& out) {
  size_t n = s.size();
  if (i >= n || s[i] != '#') return i;
  size_t j = i + 1;
  uint32_t num = 0;
  if (j < n && is_digit(s[j])) {
    for (; j < n && is_digit(s[j]); ++j) num = std::min<uint32_t>(num * 10 + (s[j] - '0'), 0x110000);
  } else if (j + 1 < n && (s[j] == 'x' || s[j] == 'X') && is_hex(s[j + 1])) {
    for (++j; j < n && is_hex(s[j]); ++j) num = std::min<uint32_t>(num * 16 + hex_value(s[j]), 0x110000);
  } else {
    return i;
  }
  if (j < n && s[j] == ';') ++j;
  char32_t c;
  if (numeric_reference(num, c)) out.push_back(c);
  return j;
}

// Matches  [^\t\n\f <&#;]{1,32};?  at s[i] and applies Python's named-reference rules; returns
// the end or i.
size_t match_named(const std::u32string& s, size_t i, std::u32string& out) {
  size_t n = s.size(), j = i;
  while (j < n && j - i < 32) {
    char32_t c = s[j];
    if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
    ++j;
  }
  if (j == i) return i;
  if (j < n && s[j] == ';') ++j;
  // Names are ASCII, so only the ASCII prefix of the candidate can ever match.
  std::string name;
  for (size_t k = i; k < j && s[k] < 0x80; ++k) name.push_back(static_cast<char>(s[k]));
  size_t len = j - i;  // in code points, like Python's s
  if (name.size() == len) {
    if (const char* v = find_entity(name)) {
      out += utf8_decode(v);
      return j;
    }
  }
  // Longest proper prefix of at least 2 characters that is a name (only legacy names lack ';').
  for (size_t x = std::min(len - 1, name.size()); x >= 2; --x) {
    if (const char* v = find_entity(name.substr(0, x))) {
      out += utf8_decode(v);
      out.append(s, i + x, j - (i + x));
      return j;
    }
  }
  out.push_back('&');
  out.append(s, i, j - i);
  return j;
}

}  // namespace

std::u32string html_unescape(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  while (i < n) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = match_numeric(s, i + 1, out);
    if (j == i + 1) j = match_named(s, i + 1, out);
    if (j == i + 1) {  // no reference here: keep '&' and rescan from the next character
      out.push_back('&');
      ++i;
    } else {
      i = j;
    }
  }
  return out;
}

std::string html_unescape(const std::string& utf8) { return utf8_encode(html_unescape(utf8_decode(utf8))); }

}  // namespace mmkit::text
