// UTF-8 <-> code points. The tokenizer works on code points (like Python's str) and goes back to
// bytes only for byte-level BPE.
#pragma once
#include <string>

namespace mmkit::text {

// Strict decode (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). Throws
// mmkit::Error "text is not valid UTF-8 at byte N", N = offset of the offending sequence's first byte.
std::u32string utf8_decode(const std::string& bytes);

// Appends cp (assumed a valid scalar value) as UTF-8.
void utf8_append(std::string& out, char32_t cp);
std::string utf8_encode(const std::u32string& cps);

// Lenient decode-and-re-encode like Python's bytes.decode("utf-8", errors="replace"): every
// maximal invalid subsequence becomes U+FFFD. Used by detokenization, where BPE pieces can split
// a character.
std::string utf8_repair(const std::string& bytes);

}  // namespace mmkit::text
