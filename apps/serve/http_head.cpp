#include "http_head.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "mmkit/serve/request_body.h"

namespace mmkit::serve {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(uint8_t(x)) == std::tolower(uint8_t(y)); });
}

// RFC 9110 5.6.2 tchar.
bool is_tchar(char c) {
  return std::isalnum(uint8_t(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// What a refusal looks like to the client: the byte quoted as \xNN, never raw.
std::string byte_name(uint8_t c) {
  char b[8];
  std::snprintf(b, sizeof b, "\\x%02X", c);
  return b;
}

RequestHead refuse(RequestHead h, int status, const char* code, std::string message) {
  h.status = status;
  h.code = code;
  h.message = std::move(message);
  return h;
}

// The host part of a Host or Origin authority: "[::1]:8080" -> "::1", "a.b:80" -> "a.b".
std::string_view authority_host(std::string_view a) {
  if (!a.empty() && a.front() == '[') {
    size_t e = a.find(']');
    return e == std::string_view::npos ? std::string_view() : a.substr(1, e - 1);
  }
  size_t c = a.rfind(':');
  return c == std::string_view::npos ? a : a.substr(0, c);
}

bool is_ip_literal(std::string_view host) {
  std::string h(host);
  unsigned char buf[16];
  return ::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

bool host_allowed(std::string_view host, const HeadPolicy& p) {
  if (host.empty()) return false;
  if (is_ip_literal(host) || iequals(host, "localhost")) return true;
  for (const std::string& a : p.allowed_hosts)
    if (a == "*" || iequals(host, a)) return true;
  return false;
}

// Methods whose requests carry no body here (a body on them would be read as the next request).
bool bodyless_method(std::string_view m) { return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE"; }

}  // namespace

const std::string* RequestHead::field(std::string_view name) const {
  for (auto& [k, v] : fields)
    if (iequals(k, name)) return &v;
  return nullptr;
}

size_t find_head_end(std::string_view buf) {
  for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

RequestHead parse_request_head(std::string_view head, const HeadPolicy& p) {
  RequestHead h;
  const char* framing = "bad_request_framing";
  if (head.size() > p.max_head_bytes)
    return refuse(h, 431, "headers_too_large",
                  "the request head is " + std::to_string(head.size()) + " bytes, the limit is " + std::to_string(p.max_head_bytes));
  // Line ends must be CRLF; NUL and other control bytes are refused anywhere in the head (RFC 9112 2.2, 5.5).
  for (size_t i = 0; i < head.size(); ++i) {
    const uint8_t c = uint8_t(head[i]);
    if (c == '\r' && (i + 1 >= head.size() || head[i + 1] != '\n'))
      return refuse(h, 400, framing, "bare CR at byte " + std::to_string(i) + " of the request head");
    if (c == '\n' && (i == 0 || head[i - 1] != '\r'))
      return refuse(h, 400, framing, "bare LF at byte " + std::to_string(i) + " of the request head (lines end with CRLF)");
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
      return refuse(h, 400, framing, "control byte " + byte_name(c) + " at byte " + std::to_string(i) + " of the request head");
  }
  std::vector<std::string_view> lines;
  for (size_t a = 0; a < head.size();) {
    size_t e = head.find("\r\n", a);
    if (e == std::string_view::npos) break;
    lines.push_back(head.substr(a, e - a));
    a = e + 2;
  }
  if (lines.empty() || !lines.back().empty()) return refuse(h, 400, framing, "the request head does not end with an empty line");
  lines.pop_back();
  if (lines.empty()) return refuse(h, 400, framing, "empty request line");

  // Request line: method SP request-target SP HTTP-version.
  const std::string_view rl = lines[0];
  if (rl.size() > p.max_target_bytes)
    return refuse(h, 414, "uri_too_long",
                  "the request line is " + std::to_string(rl.size()) + " bytes, the limit is " + std::to_string(p.max_target_bytes));
  const size_t s1 = rl.find(' '), s2 = s1 == std::string_view::npos ? s1 : rl.find(' ', s1 + 1);
  if (s2 == std::string_view::npos || rl.find(' ', s2 + 1) != std::string_view::npos)
    return refuse(h, 400, framing, "malformed request line (expected METHOD TARGET HTTP/1.1)");
  h.method = std::string(rl.substr(0, s1));
  h.target = std::string(rl.substr(s1 + 1, s2 - s1 - 1));
  h.version = std::string(rl.substr(s2 + 1));
  if (!is_token(h.method) || h.target.empty() || h.target.find('\t') != std::string::npos)
    return refuse(h, 400, framing, "malformed request line (expected METHOD TARGET HTTP/1.1)");
  if (h.version.rfind("HTTP/", 0) != 0) return refuse(h, 400, framing, "malformed request line (no HTTP version)");
  if (h.version != "HTTP/1.1" && h.version != "HTTP/1.0")
    return refuse(h, 505, "http_version", "HTTP version '" + h.version.substr(0, 16) + "' is not supported (HTTP/1.1 or 1.0)");
  const bool http10 = h.version == "HTTP/1.0";

  if (lines.size() - 1 > p.max_header_count)
    return refuse(h, 431, "headers_too_large",
                  std::to_string(lines.size() - 1) + " header fields, the limit is " + std::to_string(p.max_header_count));
  std::string forwarded(rl);
  forwarded += "\r\n";
  int n_host = 0, n_te = 0;
  std::string_view content_length;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line[0] == ' ' || line[0] == '\t')  // obs-fold (RFC 9112 5.2): a continuation of the previous field
      return refuse(h, 400, framing, "header line " + std::to_string(i) + " is folded (starts with whitespace)");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return refuse(h, 400, framing, "header line " + std::to_string(i) + " has no ':'");
    const std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (!is_token(name))  // also refuses "Name :" (whitespace before the colon, RFC 9112 5.1)
      return refuse(h, 400, framing, "header line " + std::to_string(i) + " has an invalid field name");
    h.fields.emplace_back(std::string(name), std::string(value));
    bool keep = true;
    if (iequals(name, "Content-Length")) {
      // Digits only: "+19", "19abc", "19, 19" and "-1" are framing errors, and so is a second,
      // different value (the first one winning is how requests are smuggled past a proxy).
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return refuse(h, 400, framing, "Content-Length '" + std::string(value.substr(0, 32)) + "' is not a decimal number");
      if (!content_length.empty() && content_length != value)
        return refuse(h, 400, framing, "two different Content-Length values");
      content_length = value;
    } else if (iequals(name, "Transfer-Encoding")) {
      ++n_te;
    } else if (iequals(name, "Host")) {
      ++n_host;
    } else if (iequals(name, "Expect")) {
      if (!iequals(value, "100-continue"))
        return refuse(h, 417, "expectation_failed", "Expect '" + std::string(value.substr(0, 32)) + "' is not supported");
      h.expect_continue = true;
      keep = false;
    } else if (iequals(name, "Range") || iequals(name, "If-Range")) {
      keep = false;
    }
    if (keep) {
      forwarded += line;
      forwarded += "\r\n";
    }
  }
  forwarded += "\r\n";

  // Host (RFC 9112 3.2: exactly one in HTTP/1.1), and only names that cannot be rebound.
  if (n_host > 1 || (n_host == 0 && !http10)) return refuse(h, 400, framing, n_host ? "more than one Host field" : "no Host field");
  if (n_host == 1) {
    const std::string& host = *h.field("Host");
    if (!host_allowed(authority_host(host), p))
      return refuse(h, 403, "host_not_allowed",
                    "Host '" + host.substr(0, 64) + "' is not allowed (IP addresses and localhost are; start the server with --allowed-host NAME for others)");
  }

  // Body framing (RFC 9112 6.1-6.3).
  if (n_te) {
    const std::string& te = *h.field("Transfer-Encoding");
    if (!content_length.empty()) return refuse(h, 400, framing, "both Content-Length and Transfer-Encoding");
    if (http10) return refuse(h, 400, framing, "Transfer-Encoding in an HTTP/1.0 request");
    if (n_te > 1 || !iequals(te, "chunked"))
      return refuse(h, 501, "unsupported_transfer_encoding",
                    "Transfer-Encoding '" + te.substr(0, 32) + "' is not supported (only 'chunked')");
    h.body = RequestHead::Body::chunked;
  } else if (!content_length.empty()) {
    h.content_length = std::stoull(std::string(content_length));
    if (h.content_length > 0) h.body = RequestHead::Body::length;
  }
  if (h.body != RequestHead::Body::none && bodyless_method(h.method))
    return refuse(h, 400, framing, h.method + " request with a body");
  if (h.body == RequestHead::Body::length && h.content_length > p.max_body_bytes)
    return refuse(h, 413, "payload_too_large",
                  "request body is larger than the limit of " + std::to_string(p.max_body_bytes) + " bytes (Content-Length " +
                      std::to_string(h.content_length) + ")");
  // A compressed body would be inflated by httplib after the size check: 255 KB of gzip became
  // 256 MB in memory. The API's bodies are JSON and images (already compressed): refused.
  if (const std::string* ce = h.field("Content-Encoding"); ce && !iequals(*ce, "identity"))
    return refuse(h, 415, "unsupported_content_encoding",
                  "Content-Encoding '" + ce->substr(0, 32) + "' is not accepted: send the body uncompressed");

  // Browsers: a page of another origin may POST forms (multipart, text/plain) without a CORS
  // preflight, so the server would compute for any site the user visits. Requests a browser
  // marks (Origin, Sec-Fetch-*) must come from this origin, and be JSON or carry
  // X-Mmkit-Client: both make a cross-origin fetch preflight, which this server never grants.
  if (h.method == "POST") {
    const std::string* origin = h.field("Origin");
    const std::string* site = h.field("Sec-Fetch-Site");
    if (origin) {
      const std::string* host = h.field("Host");
      const bool same = host && (*origin == "http://" + *host || *origin == "https://" + *host);
      if (!same)
        return refuse(h, 403, "cross_origin", "POST from origin '" + origin->substr(0, 64) + "' refused (only same-origin pages may post)");
    }
    if (site && !iequals(*site, "same-origin") && !iequals(*site, "none"))
      return refuse(h, 403, "cross_origin", "POST with Sec-Fetch-Site '" + site->substr(0, 32) + "' refused (only same-origin pages may post)");
    if (origin || site || h.field("Sec-Fetch-Mode")) {
      const std::string* ct = h.field("Content-Type");
      const bool json = ct && ct->size() >= 16 && iequals(ct->substr(0, 16), "application/json") &&
                        (ct->size() == 16 || (*ct)[16] == ';' || (*ct)[16] == ' ');
      if (!json && !h.field("X-Mmkit-Client"))
        return refuse(h, 403, "cross_origin", "a browser POST must be application/json or carry an X-Mmkit-Client header");
    }
  }

  const std::string* conn = h.field("Connection");
  h.keep_alive = http10 ? (conn && iequals(*conn, "keep-alive")) : !(conn && iequals(*conn, "close"));
  h.forwarded = std::move(forwarded);
  return h;
}

std::string error_type(int status) {
  if (status == 401) return "authentication_error";
  if (status == 403) return "permission_error";
  if (status == 429) return "rate_limit_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

std::string error_response(int status, const std::string& code, const std::string& message) {
  const char* reason = status == 400   ? "Bad Request"
                       : status == 403 ? "Forbidden"
                       : status == 408 ? "Request Timeout"
                       : status == 413 ? "Payload Too Large"
                       : status == 414 ? "URI Too Long"
                       : status == 415 ? "Unsupported Media Type"
                       : status == 417 ? "Expectation Failed"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 501 ? "Not Implemented"
                       : status == 503 ? "Service Unavailable"
                       : status == 505 ? "HTTP Version Not Supported"
                                       : "Error";
  const std::string body = json_text(
      {{"error", {{"code", code}, {"message", message}, {"type", error_type(status)}, {"param", nullptr}}}});
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

ChunkedScanner::State ChunkedScanner::scan(std::string_view buf) {
  auto fail = [&](std::string why) {
    why_ = std::move(why);
    return State::error;
  };
  while (pos_ < buf.size()) {
    switch (part_) {
      case Part::size_line: {
        const size_t e = buf.find("\r\n", pos_);
        if (e == std::string_view::npos) {
          if (buf.size() - pos_ > 1024) return fail("chunk size line longer than 1024 bytes");
          return State::more;
        }
        std::string_view line = buf.substr(pos_, e - pos_);
        line = line.substr(0, line.find(';'));  // chunk extensions are ignored
        line = trim(line);
        if (line.empty() || line.size() > 15 || !std::all_of(line.begin(), line.end(), [](char c) { return std::isxdigit(uint8_t(c)); }))
          return fail("bad chunk size '" + std::string(line.substr(0, 20)) + "'");
        left_ = std::stoull(std::string(line), nullptr, 16);
        total_ += left_;
        if (total_ > max_body_) {
          too_large_ = true;
          return fail("chunked body larger than the limit");
        }
        pos_ = e + 2;
        part_ = left_ ? Part::data : Part::trailer;
        break;
      }
      case Part::data: {
        const size_t n = size_t(std::min<uint64_t>(left_, buf.size() - pos_));
        pos_ += n;
        left_ -= n;
        if (left_ == 0) part_ = Part::data_crlf;
        break;
      }
      case Part::data_crlf:
        if (buf.size() - pos_ < 2) return State::more;
        if (buf.substr(pos_, 2) != "\r\n") return fail("chunk data not followed by CRLF");
        pos_ += 2;
        part_ = Part::size_line;
        break;
      case Part::trailer: {
        const size_t e = buf.find("\r\n", pos_);
        if (e == std::string_view::npos) {
          if (buf.size() - pos_ > 1024) return fail("trailer line longer than 1024 bytes");
          return State::more;
        }
        const bool last = e == pos_;
        pos_ = e + 2;
        if (last) {
          end_ = pos_;
          return State::done;
        }
        if (++trailer_lines_ > 16) return fail("more than 16 trailer fields");
        break;
      }
    }
  }
  return State::more;
}

}  // namespace mmkit::serve
