#include "mmkit/serve/request_limits.h"

#include "mmkit/serve/api_error.h"
#include "mmkit/text/utf8.h"

namespace mmkit::serve {

namespace {

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

std::vector<uint8_t> decode_base64(std::string_view s, const std::string& field) {
  if (s.substr(0, 5) == "data:") {
    size_t comma = s.find(',');
    if (comma == std::string_view::npos || s.substr(0, comma).find(";base64") == std::string_view::npos)
      api_fail(400, "bad_base64", field, ": a data: URL must be base64 (data:<type>;base64,<data>)");
    s.remove_prefix(comma + 1);
  }
  std::vector<uint8_t> out;
  out.reserve(s.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    int v = b64_value(c);
    if (v < 0 || pad)
      api_fail(400, "bad_base64", field, ": invalid base64 character ", v < 0 ? "'" + std::string(1, c) + "'" : "after '='",
               " at offset ", i);
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
    }
  }
  if (bits >= 6) api_fail(400, "bad_base64", field, ": base64 data is truncated (length not a multiple of 4)");
  if (out.empty()) api_fail(400, "bad_base64", field, ": empty image data");
  return out;
}

std::string encode_base64(const uint8_t* d, size_t n) {
  static const char* A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t(d[i]) << 16 | (i + 1 < n ? uint32_t(d[i + 1]) << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
    out += A[v >> 18];
    out += A[(v >> 12) & 63];
    out += i + 1 < n ? A[(v >> 6) & 63] : '=';
    out += i + 2 < n ? A[v & 63] : '=';
  }
  return out;
}

Image decode_request_image(const uint8_t* data, size_t size, const RequestLimits& lim, const std::string& field) {
  const ImageFormat f = detect_image_format(data, size);
  if (f != ImageFormat::png && f != ImageFormat::jpeg)  // unknown, or recognised but not decoded (GIF, ...)
    api_fail(415, "unsupported_media_type", field, ": not a PNG or JPEG image (", size, " bytes)");
  try {
    return decode_image_memory(data, size, field, lim.max_image_pixels);
  } catch (const Error& e) {
    std::string m = e.what();
    // The decoders check the declared size before allocating pixels.
    if (m.find("decoding cost") != std::string::npos) throw ApiError(413, "image_too_costly", m);
    if (m.find("exceeds the limit of") != std::string::npos) throw ApiError(413, "image_too_large", m);
    throw ApiError(400, "bad_image", m);
  }
}

void check_text(const std::string& s, const RequestLimits& lim, const std::string& field) {
  if (s.empty()) api_fail(400, "bad_text", field, ": empty text");
  if (s.size() > lim.max_text_bytes)
    api_fail(400, "text_too_long", field, ": ", s.size(), " bytes, the limit is ", lim.max_text_bytes);
  try {
    text::utf8_decode(s);
  } catch (const Error& e) {
    api_fail(400, "bad_text", field, ": ", e.what());
  }
}

}  // namespace mmkit::serve
