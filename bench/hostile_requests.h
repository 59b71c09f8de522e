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
  bool closed = false;  // the server closed the connection (before timeout_s)
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
    if (k <= 0) {
      r.closed = true;
      break;
    }
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
  std::string bytes;                   // the whole request, "Connection: close" unless must_close
  int status;                          // expected
  std::string code;                    // expected error.code (4xx/5xx)
  std::vector<std::string> fragments;  // expected in error.message
  // The server must close the connection itself (the request does not ask it to): after a
  // framing error nothing that follows on the connection can be trusted (RFC 9112 11.2).
  bool must_close = false;
  size_t max_body = 0;  // 2xx answers: the body may be at most this long
};

// A request without "Connection: close": the server has to decide to close.
inline std::string raw_request(const std::string& head_lines, const std::string& body = "") {
  return head_lines + "\r\n" + body;
}

// gzip (windowBits 31) of `n` zero bytes: ~1000:1.
inline std::string gzip_zeros(size_t n) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out, zeros(1 << 20, '\0');
  std::vector<unsigned char> buf(1 << 16);
  for (size_t done = 0; done < n;) {
    const size_t k = std::min(zeros.size(), n - done);
    done += k;
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = uInt(k);
    const int flush = done == n ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = buf.data();
      z.avail_out = uInt(buf.size());
      deflate(&z, flush);
      out.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

// A progressive JPEG header for w x h (3 components, no subsampling) followed by `scans`
// tiny DC scans: the marker structure of a scan bomb (a real one repeats refinement scans;
// the decoder's cost check counts the SOS markers before decoding any of them).
inline std::string jpeg_scan_bomb(uint16_t w, uint16_t h, int scans) {
  std::string j = "\xFF\xD8";
  j += std::string("\xFF\xDB\x00\x43\x00", 5) + std::string(64, '\x01');  // DQT: table 0, all ones
  j += std::string("\xFF\xC2\x00\x11\x08", 5);                            // SOF2, 8-bit
  j += char(h >> 8), j += char(h & 255), j += char(w >> 8), j += char(w & 255);
  j += std::string("\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00", 10);  // 3 components, 1x1, table 0
  for (int i = 0; i < scans; ++i) j += std::string("\xFF\xDA\x00\x08\x01\x01\x00\x00\x00\x00\x00", 11);
  return j + "\xFF\xD9";
}

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
  // Issue #23's kinds.
  const std::string H = "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  const std::string gz = gzip_zeros(256u << 20);  // the issue's: 256 MB of zeros in ~255 KB
  std::string many_headers;
  for (int i = 0; i < 200; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  json labels = json::array(), templates = json::array();
  for (int i = 0; i < 100; ++i) labels.push_back("l" + std::to_string(i));
  for (int i = 0; i < 2000; ++i) templates.push_back("{}");  // 20,000 would hit the JSON value bound first
  const std::string prompt_bomb = json{{"image", b64(png)}, {"labels", labels}, {"templates", templates}}.dump();
  for (int i = 2000; i < 20000; ++i) templates.push_back("{}");
  const std::string template_bomb = json{{"image", b64(png)}, {"labels", labels}, {"templates", templates}}.dump();
  std::string headers_9mb;
  headers_9mb.reserve(9'800'000);
  while (headers_9mb.size() < 9'800'000) headers_9mb += "X: y\r\n";
  // The 7.7 MB of empty objects where the body limit allows it (the probe's 32 MB), else
  // as much as fits under the limit (the table's 2 MB): refused by the value count either way.
  const size_t n_objects = std::min<size_t>(2'566'000, (L.max_body_bytes - 1024) / 3);
  std::string empty_objects = "{\"x\": [";
  for (size_t i = 0; i < n_objects; ++i) empty_objects += i ? ",{}" : "{}";
  empty_objects += "]}";
  std::vector<std::string> many_images(L.max_items + 1, b64(png));
  // The 4000x4000 progressive JPEG where the pixel limit allows it (the probe's 16 Mpx),
  // else 1000x1000 (the table's 1 Mpx); 3 components of 8x8 blocks.
  const int bomb_side = L.max_image_pixels >= 16'000'000 ? 4000 : 1000;
  const size_t bomb_blocks = size_t(bomb_side / 8) * size_t(bomb_side / 8) * 3;
  std::string ranges;
  for (int i = 0; i < 1350; ++i) ranges += i ? ",0-" : "0-";  // each range is the whole file
  const std::string smuggled = "GET /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const std::string form_body = form("texts", "", "a cat");
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
      {"garbage_request_line", "HELLO THERE\r\n\r\n", 400, "bad_request_framing", {"malformed request line"}, true},
      // Invalid UTF-8 quoted back in error messages (used to kill the server: docs/ROBUSTNESS.md finding 6).
      {"invalid_utf8_path", "POST /v1/%FF%FE HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 404,
       "not_found", {"no route POST /v1/"}},
      {"invalid_utf8_content_type", post_bytes(E, "text/\xff\xfe", "x"), 415, "unsupported_media_type",
       {"Content-Type 'text/"}},
      {"invalid_utf8_form_boolean", post_bytes(E, F, form("normalize", "", "1\xff")), 400, "bad_request",
       {"'normalize' must be true or false"}},

      // Issue #23, class 1: compressed bodies are refused from the head, before a byte is inflated.
      {"gzip_bomb_body", raw_request(H + "Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: " +
                                         std::to_string(gz.size()) + "\r\n", gz),
       415, "unsupported_content_encoding", {"Content-Encoding 'gzip'", "uncompressed"}, true},
      {"brotli_body", raw_request(H + "Content-Type: application/json\r\nContent-Encoding: br\r\nContent-Length: 99\r\n",
                                  std::string(99, '\x1b')),
       415, "unsupported_content_encoding", {"Content-Encoding 'br'"}, true},
      {"deflate_chunked_body", raw_request(H + "Content-Type: application/json\r\nContent-Encoding: deflate\r\n"
                                               "Transfer-Encoding: chunked\r\n", "5\r\nxxxxx\r\n0\r\n\r\n"),
       415, "unsupported_content_encoding", {"Content-Encoding 'deflate'"}, true},
      // Class 2: work per request bounded by limits checked before the work.
      {"too_many_headers", raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many_headers), 431,
       "headers_too_large", {"201 header fields, the limit is 100"}, true},
      {"huge_header", raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(20000, 'b') + "\r\n"),
       431, "headers_too_large", {"the limit is 16384"}, true},
      {"zero_shot_prompt_bomb", post_bytes("/v1/zero-shot", J, prompt_bomb), 400, "too_many_prompts",
       {"100 labels x 2000 templates = 200000 prompts", "the limit is 1024"}},
      {"zero_shot_20000_templates", post_bytes("/v1/zero-shot", J, template_bomb), 400, "bad_json",
       {"more than 10000 JSON values"}},  // the 98 KB body: refused while parsed
      {"headers_9_8_mb", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers_9mb + "\r\n", 431, "headers_too_large",
       {"the limit is 16384"}, true},  // the 2M header fields: refused after 16 KB of them
      {"json_empty_objects", post_bytes(E, J, empty_objects), 400, "bad_json", {"more than 10000 JSON values"}},
      {"json_deep_nesting", post_bytes(E, J, "{\"x\": " + std::string(5000, '[') + std::string(5000, ']') + "}"), 400,
       "bad_json", {"nested deeper than 32 levels"}},
      {"too_many_images", post_bytes(E, J, json{{"images", many_images}}.dump()), 400, "too_many_items",
       {std::to_string(many_images.size()) + " texts + images", "limit is " + std::to_string(L.max_items)}},
      // Class 4: CPU bombs and amplification.
      {"jpeg_scan_bomb", post_bytes(E, J, json{{"images", {b64(jpeg_scan_bomb(bomb_side, bomb_side, 985))}}}.dump()), 413,
       "image_too_costly", {"images[0]", "985 scans x " + std::to_string(bomb_blocks) + " blocks", "decoding cost"}},
      {"overlapping_ranges", "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nRange: bytes=" + ranges + "\r\n\r\n",
       200, "", {}, false, 256u << 10},
      // Class 5: strict framing, 400 and the connection closed (RFC 9112 6.3, 5.2, 2.2).
      {"content_length_and_chunked", raw_request(H + "Content-Type: application/json\r\nContent-Length: 19\r\n"
                                                     "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
       400, "bad_request_framing", {"both Content-Length and Transfer-Encoding"}, true},
      {"two_content_lengths", raw_request(H + "Content-Type: application/json\r\nContent-Length: 19\r\nContent-Length: 20\r\n",
                                          "{\"texts\": [\"a\"]} x"),
       400, "bad_request_framing", {"two different Content-Length values"}, true},
      {"content_length_plus", raw_request(H + "Content-Type: application/json\r\nContent-Length: +19\r\n", "{\"texts\": [\"abc\"]}"),
       400, "bad_request_framing", {"Content-Length '+19' is not a decimal number"}, true},
      {"content_length_suffix", raw_request(H + "Content-Type: application/json\r\nContent-Length: 19abc\r\n", "{\"texts\": [\"abc\"]}"),
       400, "bad_request_framing", {"Content-Length '19abc'"}, true},
      {"obs_folded_transfer_encoding", raw_request(H + "Content-Type: application/json\r\nTransfer-Encoding:\r\n chunked\r\n",
                                                   "0\r\n\r\n"),
       400, "bad_request_framing", {"folded"}, true},
      {"transfer_encoding_not_chunked", raw_request(H + "Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n",
                                                    "0\r\n\r\n"),
       501, "unsupported_transfer_encoding", {"'gzip, chunked'"}, true},
      {"nul_in_header", raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a" + std::string(1, '\0') + "b\r\n"), 400,
       "bad_request_framing", {"control byte \\x00"}, true},
      {"bare_cr_in_header", raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n"), 400,
       "bad_request_framing", {"bare CR"}, true},
      {"get_with_smuggled_body", raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                                                 std::to_string(smuggled.size()) + "\r\n", smuggled),
       400, "bad_request_framing", {"GET request with a body"}, true},
      // Class 6: DNS rebinding (a name the attacker controls) and cross-site browser POSTs.
      {"rebinding_host", "GET /healthz HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n", 403,
       "host_not_allowed", {"Host 'attacker.example:8080' is not allowed", "--allowed-host"}, true},
      {"cross_origin_form_post", "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://attacker.example\r\n"
                                 "Content-Type: " + F + "\r\nContent-Length: " + std::to_string(form_body.size()) +
                                 "\r\nConnection: close\r\n\r\n" + form_body,
       403, "cross_origin", {"origin 'http://attacker.example'"}, true},
      {"browser_form_post_without_header", "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Mode: no-cors\r\n"
                                           "Sec-Fetch-Site: same-origin\r\nContent-Type: " + F + "\r\nContent-Length: " +
                                           std::to_string(form_body.size()) + "\r\nConnection: close\r\n\r\n" + form_body,
       403, "cross_origin", {"application/json or carry an X-Mmkit-Client header"}, true},
      // Class 7: oddities.
      {"json_nul_then_garbage", post_bytes(E, J, std::string("{\"texts\": [\"a\"]}") + '\0' + "garbage"), 400, "bad_json",
       {"NUL byte at offset 16"}},
      {"json_content_type_suffix", post_bytes(E, "application/jsonfoo", "{\"texts\": [\"a\"]}"), 415, "unsupported_media_type",
       {"Content-Type 'application/jsonfoo'"}},
      {"uri_too_long", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 414,
       "uri_too_long", {"limit is 8192"}, true},
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

// The reply is what the kind expects: its error (above), or a 2xx with a bounded body; and
// a closed connection where the kind requires one.
inline bool matches(const HttpReply& r, const HostileRequest& k, std::string* why) {
  if (k.status < 300) {
    if (r.status != k.status) return *why = "status " + std::to_string(r.status) + " (" + r.error + r.body.substr(0, 200) + ")", false;
    if (r.body.size() > k.max_body) return *why = "body of " + std::to_string(r.body.size()) + " bytes", false;
  } else if (!matches(r, k.status, k.code, k.fragments, why)) {
    return false;
  }
  if (k.must_close && !r.closed) return *why = "the server kept the connection open", false;
  return true;
}

}  // namespace mmkit::hostile
