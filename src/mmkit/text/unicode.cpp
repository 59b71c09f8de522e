#include "mmkit/text/unicode.h"

#include <algorithm>

#include "mmkit/text/unicode_tables.h"

namespace mmkit::text {

namespace {

using tables::CodeRange;

bool in_ranges(const CodeRange* r, size_t n, char32_t cp) {
  // First range with hi >= cp, then check its lo.
  const CodeRange* it = std::lower_bound(r, r + n, cp, [](const CodeRange& a, char32_t c) { return a.hi < c; });
  return it != r + n && it->lo <= cp;
}

bool case_ignorable(char32_t cp) {
  return in_ranges(tables::kCaseIgnorableRanges, tables::kCaseIgnorableRangeCount, cp);
}
bool cased(char32_t cp) { return in_ranges(tables::kCasedRanges, tables::kCasedRangeCount, cp); }

// CPython's rule for U+03A3 at index i: final iff  cased case-ignorable* SIGMA
// !(case-ignorable* cased). Each scan stops at the first non-ignorable character, so a string
// costs O(n) overall even with many sigmas.
bool final_sigma(const std::u32string& s, size_t i) {
  size_t j = i;
  while (j > 0 && case_ignorable(s[j - 1])) --j;
  if (j == 0 || !cased(s[j - 1])) return false;
  size_t k = i + 1;
  while (k < s.size() && case_ignorable(s[k])) ++k;
  return k == s.size() || !cased(s[k]);
}

}  // namespace

PreTokenClass pretoken_class(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return PreTokenClass::letter;
    if (cp >= '0' && cp <= '9') return PreTokenClass::number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return PreTokenClass::space;
    return PreTokenClass::other;
  }
  const auto* r = tables::kPreTokenClassRuns;
  size_t n = tables::kPreTokenClassRunCount;
  // Last run whose start <= cp.
  const auto* it = std::upper_bound(r, r + n, cp, [](char32_t c, const tables::ClassRun& a) { return c < a.start; });
  return static_cast<PreTokenClass>((it - 1)->cls);
}

bool is_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return in_ranges(tables::kSpaceRanges, tables::kSpaceRangeCount, cp);
}

std::u32string to_lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* m = tables::kLowerMappings;
  size_t n = tables::kLowerMappingCount;
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    if (c == 0x03A3) {
      out.push_back(final_sigma(s, i) ? 0x03C2 : 0x03C3);
      continue;
    }
    const auto* it = std::lower_bound(m, m + n, c, [](const tables::LowerMapping& a, char32_t x) { return a.cp < x; });
    if (it != m + n && it->cp == c) {
      out.push_back(it->lower[0]);
      if (it->lower[1]) out.push_back(it->lower[1]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace mmkit::text
