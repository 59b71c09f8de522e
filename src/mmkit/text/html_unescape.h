// Python's html.unescape (3.11) on code points: named references from the full HTML5 table
// (html_entities.h), including the legacy names accepted without ';' and the longest-prefix rule
// ("&ampfoo" -> "&foo"), and numeric references &#NNN; / &#xHH; with the HTML5 fix-ups
// (0x80..0x9F as Windows-1252, NUL/surrogates/out of range -> U+FFFD, noncharacters and most
// C0/C1 controls -> removed). Unknown references are left as they are.
#pragma once
#include <string>

namespace mmkit::text {

std::u32string html_unescape(const std::u32string& s);
std::string html_unescape(const std::string& utf8);  // throws mmkit::Error on invalid UTF-8

}  // namespace mmkit::text
