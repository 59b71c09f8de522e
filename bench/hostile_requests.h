// Hostile HTTP requests for `mmkit serve` and a raw loopback client to send
// them: shared by the hostile-request table (tests/test_hostile_requests.cpp)
// and the mixed good/bad fault load (bench/serve_fault_load.cpp).
//
// Every kind carries the answer the server must give: a 4xx status, the JSON
// error code, and fragments its message must contain (naming the problem).
// The numbers in the messages come from the limits the server was started
// with (HostileLimits, matching `mmkit serve --max-body-mb --max-text-bytes
// --max-image-pixels --request-timeout`).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/serve/request_limits.h"

namespace mmkit::hostile {

struct HttpReply {
  int status = 0;       // 0: no (complete) response
  std::string body;
  std::string error;    // transport problem, when status == 0
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// Sends `bytes` on a fresh connection to 127.0.0.1:port (one byte every
// `byte_delay_ms` if > 0, stopping after `send_limit` bytes if given: a
// client that never finishes), then reads the response until the server
// closes or `timeout_s` passes.
inline HttpReply raw_http(int port, const std::string& bytes, int byte_delay_ms = 0, double timeout_s = 60,
                          size_t send_limit = std::string::npos) {
  HttpReply r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r.error = "socket failed", r;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r.error = "connect failed", r;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const size_t n = std::min(bytes.size(), send_limit);
  // Sending stops early when the server has answered (and maybe closed) already.
  auto answered = [&] {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  };
  for (size_t off = 0; off < n;) {
    const size_t chunk = byte_delay_ms > 0 ? 1 : n - off;
    ssize_t w = ::send(fd, bytes.data() + off, chunk, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += size_t(w);
    if (byte_delay_ms > 0) {
      if (answered()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(byte_delay_ms));
    }
  }
  std::string in;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
  char buf[65536];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t k = ::recv(fd, buf, sizeof buf, 0);
    if (k <= 0) break;
    in.append(buf, size_t(k));
  }
  ::close(fd);
  const size_t sp = in.find(' '), hdr_end = in.find("\r\n\r\n");
  if (in.compare(0, 5, "HTTP/") != 0 || sp == std::string::npos || hdr_end == std::string::npos) {
    r.error = in.empty() ? "no response" : "not an HTTP response: " + in.substr(0, 80);
    return r;
  }
  r.status = std::atoi(in.c_str() + sp + 1);
  r.body = in.substr(hdr_end + 4);
  return r;
}

inline std::string post_bytes(const std::string& path, const std::string& content_type, const std::string& body,
                              bool close = true) {
  std::string h = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
  return h + "Content-Length: " + std::to_string(body.size()) + "\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n" + body;
}

// The same body with Transfer-Encoding: chunked (64 KB chunks).
inline std::string chunked(const std::string& path, const std::string& content_type, const std::string& body) {
  std::string r = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type +
                  "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  char size[32];
  for (size_t off = 0; off < body.size(); off += 65536) {
    const size_t n = std::min<size_t>(65536, body.size() - off);
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    r += size + body.substr(off, n) + "\r\n";
  }
  return r + "0\r\n\r\n";
}

inline std::string b64(const std::string& bytes) {
  return serve::encode_base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// A PNG: signature, IHDR declaring w x h (8-bit RGB), the given zlib stream as IDAT, IEND.
inline std::string png_with(uint32_t w, uint32_t h, const std::string& idat) {
  std::string v = "\x89PNG\r\n\x1a\n";
  auto be32 = [&](uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v += char(uint8_t(x >> s));
  };
  auto chunk = [&](const char* type, const std::string& data) {
    be32(uint32_t(data.size()));
    const size_t start = v.size();
    v += std::string(type, 4) + data;
    be32(uint32_t(crc32(0, reinterpret_cast<const Bytef*>(v.data() + start), uInt(v.size() - start))));
  };
  std::string ihdr;
  for (uint32_t x : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr += char(uint8_t(x >> s));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  chunk("IHDR", ihdr);
  if (!idat.empty()) chunk("IDAT", idat);
  chunk("IEND", "");
  return v;
}

// A decompression bomb: a complete, valid side x side black PNG whose pixels
// compress ~1000:1 (4000 x 4000: 48 MB of pixels in ~50 KB).
inline std::string png_zlib_bomb(uint32_t side) {
  const size_t row = 1 + size_t(side) * 3, raw = row * side;
  z_stream z{};
  deflateInit(&z, 9);
  std::string out, zeros(row, '\0');
  std::vector<unsigned char> buf(1 << 16);
  for (uint32_t y = 0; y < side; ++y) {
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = uInt(row);
    const int flush = y + 1 == side ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = buf.data();
      z.avail_out = uInt(buf.size());
      deflate(&z, flush);
      out.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  (void)raw;
  return png_with(side, side, out);
}

struct HostileLimits {
  size_t max_body_bytes = 2u << 20;
  size_t max_text_bytes = 1000;
  int64_t max_image_pixels = 1'000'000;
  size_t max_items = 64;
  double request_timeout_s = 2;
};

struct HostileRequest {
  std::string name;
  std::string bytes;                   // the whole request, "Connection: close"
  int status;                          // expected
  std::string code;                    // expected error.code
  std::vector<std::string> fragments;  // expected in error.message
};

// A valid small PNG to build good-looking requests around bad parts.
inline std::string small_png() {
  Image im(8, 6, 3);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 5);
  std::vector<uint8_t> p = encode_png(im);
  return std::string(p.begin(), p.end());
}

inline std::vector<HostileRequest> hostile_requests(const HostileLimits& L) {
  using nlohmann::json;
  const std::string J = "application/json", E = "/v1/embeddings";
  const std::string png = small_png();
  const std::string big_text(1u << 20, 'a');
  auto form = [](const std::string& name, const std::string& filename, const std::string& content) {
    std::string b = "--B0undary\r\nContent-Disposition: form-data; name=\"" + name + "\"";
    if (!filename.empty()) b += "; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream";
    return b + "\r\n\r\n" + content + "\r\n--B0undary--\r\n";
  };
  const std::string F = "multipart/form-data; boundary=B0undary";
  std::vector<std::string> many;
  for (size_t i = 0; i <= L.max_items; ++i) many.push_back("t" + std::to_string(i));
  std::string oversized = "{\"texts\": [\"" + std::string(L.max_body_bytes + 1000, 'x') + "\"]}";
  return {
      // content types
      {"wrong_content_type", post_bytes(E, "text/plain", "hello"), 415, "unsupported_media_type",
       {"Content-Type 'text/plain'", "application/json or multipart/form-data"}},
      {"form_urlencoded", post_bytes(E, "application/x-www-form-urlencoded", "texts=a+cat"), 415,
       "unsupported_media_type", {"application/x-www-form-urlencoded"}},
      {"json_sent_as_xml", post_bytes(E, "application/xml", "{\"texts\": [\"a\"]}"), 415, "unsupported_media_type",
       {"application/xml"}},
      // sizes
      {"oversized_body", post_bytes(E, J, oversized), 413, "payload_too_large",
       {"larger than the limit of " + std::to_string(L.max_body_bytes) + " bytes"}},
      // httplib 0.11 checks only Content-Length against its limit; DeadlineHttpServer caps the rest.
      {"oversized_chunked_body", chunked(E, J, oversized + std::string(1u << 20, ' ')), 413, "payload_too_large",
       {"larger than the limit of " + std::to_string(L.max_body_bytes) + " bytes"}},
      {"too_many_items", post_bytes(E, J, json{{"texts", many}}.dump()), 400, "too_many_items",
       {std::to_string(many.size()) + " texts + images", "limit is " + std::to_string(L.max_items)}},
      // JSON
      {"malformed_json", post_bytes(E, J, "{\"texts\": [\"a cat\","), 400, "bad_json", {"not valid JSON"}},
      {"json_not_object", post_bytes(E, J, "[\"a cat\"]"), 400, "bad_json", {"must be a JSON object, got array"}},
      {"empty_body", post_bytes(E, J, ""), 400, "bad_request", {"empty request body"}},
      {"wrong_field_type", post_bytes(E, J, "{\"texts\": 5}"), 400, "bad_request",
       {"'texts' must be a string or an array of strings"}},
      {"nothing_to_embed", post_bytes(E, J, "{\"normalize\": true}"), 400, "bad_request", {"nothing to embed"}},
      // texts
      {"invalid_utf8_json", post_bytes(E, J, "{\"texts\": [\"bad \xff byte\"]}"), 400, "bad_json", {"UTF-8"}},
      {"invalid_utf8_form", post_bytes(E, F, form("texts", "", "bad \xff byte")), 400, "bad_text",
       {"texts[0]", "not valid UTF-8 at byte 4"}},
      {"megabyte_text", post_bytes(E, J, json{{"texts", {big_text}}}.dump()), 400, "text_too_long",
       {"texts[0]", std::to_string(big_text.size()) + " bytes, the limit is " + std::to_string(L.max_text_bytes)}},
      {"empty_text", post_bytes(E, J, "{\"texts\": [\"\"]}"), 400, "bad_text", {"texts[0]", "empty text"}},
      // images
      {"bad_base64", post_bytes(E, J, "{\"images\": [\"@@@@\"]}"), 400, "bad_base64",
       {"images[0]", "invalid base64 character '@'"}},
      {"truncated_base64", post_bytes(E, J, "{\"images\": [\"iVBORw0KG\"]}"), 400, "bad_base64",
       {"images[0]", "truncated"}},
      {"not_an_image", post_bytes(E, J, json{{"images", {b64("hello, not an image")}}}.dump()), 415,
       "unsupported_media_type", {"images[0]", "not a PNG or JPEG"}},
      {"truncated_png", post_bytes(E, J, json{{"images", {b64(png.substr(0, png.size() / 2))}}}.dump()), 400,
       "bad_image", {"images[0]"}},
      {"bomb_declared_png", post_bytes(E, J, json{{"images", {b64(png_with(100000, 100000, ""))}}}.dump()), 413,
       "image_too_large", {"images[0]", "declared size 100000x100000", "exceeds the limit"}},
      {"bomb_zlib_png", post_bytes(E, F, form("images", "bomb.png", png_zlib_bomb(4000))), 413, "image_too_large",
       {"declared size 4000x4000", "exceeds the limit of " + std::to_string(L.max_image_pixels)}},
      // routing and framing
      {"unknown_route", post_bytes("/v1/nope", J, "{}"), 404, "not_found", {"no route POST /v1/nope"}},
      {"garbage_request_line", "HELLO THERE\r\n\r\n", 400, "http_error", {"malformed"}},
      // Invalid UTF-8 quoted back in error messages (used to kill the server: docs/ROBUSTNESS.md finding 6).
      {"invalid_utf8_path", "POST /v1/%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 404,
       "not_found", {"no route POST /v1/"}},
      {"invalid_utf8_content_type", post_bytes(E, "text/\xff\xfe", "x"), 415, "unsupported_media_type",
       {"Content-Type 'text/"}},
      {"invalid_utf8_form_boolean", post_bytes(E, F, form("normalize", "", "1\xff")), 400, "bad_request",
       {"'normalize' must be true or false"}},
  };
}

// Slow clients: the request is complete but arrives one byte per `delay_ms`
// (headers byte by byte), or stops before its body is complete. Either must be
// cut with a 408 once request_timeout_s has passed.
inline std::string slow_request() { return post_bytes("/v1/embeddings", "application/json", "{\"texts\": [\"a slow cat\"]}"); }

// The reply matches the kind: status, code, and every fragment in the message.
inline bool matches(const HttpReply& r, int status, const std::string& code, const std::vector<std::string>& frags,
                    std::string* why) {
  if (r.status != status) return *why = "status " + std::to_string(r.status) + " (" + r.error + r.body.substr(0, 200) + ")", false;
  nlohmann::json j = r.json();
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object() || !j["error"].contains("message"))
    return *why = "not a JSON error: " + r.body.substr(0, 200), false;
  if (j["error"].value("code", "") != code) return *why = "code " + j["error"].value("code", "") + ": " + r.body, false;
  const std::string msg = j["error"].value("message", "");
  for (auto& f : frags)
    if (msg.find(f) == std::string::npos) return *why = "message lacks '" + f + "': " + msg, false;
  return true;
}

}  // namespace mmkit::hostile
