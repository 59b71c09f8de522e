// Strict checks on an HTTP/1.1 request head (request line and header fields,
// up to the empty line), made by the connection loop (event_http_server.h)
// before a byte of the body is read and before httplib sees the request.
// httplib 0.11 is lenient where RFC 9112 requires a 400 and closing the
// connection (two Content-Lengths, Content-Length with Transfer-Encoding,
// "+19", obs-folded lines, NUL or bare CR in values), inflates compressed
// bodies past the body limit, keeps no count of header fields and answers
// any number of byte ranges: all of that is decided here, once, from the head.
//
//   HeadPolicy p;  p.max_body_bytes = 2 << 20;
//   RequestHead h = parse_request_head(head_bytes, p);    // head_bytes ends with the empty line
//   if (!h.ok()) send(error_response(h.status, h.code, h.message));   // and close the connection
//   else if (h.body == RequestHead::Body::length) read h.content_length more bytes ...
//
// Refusals (status, code):
//   400 bad_request_framing  malformed request line, bare CR/LF, NUL or control bytes, obs-fold,
//                            whitespace before ':', bad/duplicate Content-Length, Content-Length
//                            with Transfer-Encoding, a body on GET/HEAD/OPTIONS, no Host (HTTP/1.1)
//   403 host_not_allowed     Host is a name not in the allow-list (DNS rebinding)
//   403 cross_origin         a browser POST from another origin, or without JSON / X-Mmkit-Client
//   413 payload_too_large    Content-Length over the body limit
//   415 unsupported_content_encoding   Content-Encoding other than identity (compressed bodies)
//   417 expectation_failed   an Expect other than 100-continue
//   431 headers_too_large    more header fields, or more head bytes, than the policy allows
//   501 unsupported_transfer_encoding  a Transfer-Encoding other than "chunked"
//   505 http_version         not HTTP/1.0 or HTTP/1.1
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mmkit::serve {

struct HeadPolicy {
  size_t max_body_bytes = 32u << 20;
  size_t max_header_count = 100;     // header fields (browsers send ~20)
  size_t max_head_bytes = 16 << 10;  // request line + header fields + empty line
  size_t max_target_bytes = 8192;    // the request line (414 above it)
  // Host names accepted besides IP literals and "localhost" (a DNS-rebinding page can
  // only make a browser send a name it controls; an IP literal is never rebound). "*": any.
  std::vector<std::string> allowed_hosts;
};

struct RequestHead {
  enum class Body { none, length, chunked };

  int status = 0;  // 0: acceptable; else the refusal's HTTP status
  std::string code, message;
  std::string method, target, version;
  std::vector<std::pair<std::string, std::string>> fields;  // names as sent, values trimmed
  Body body = Body::none;
  uint64_t content_length = 0;  // Body::length
  bool keep_alive = true;       // false: Connection: close, or HTTP/1.0 without keep-alive
  bool expect_continue = false;
  // The head httplib is given: Expect (the loop answers 100 itself), Range and If-Range
  // (no partial responses: 1,350 overlapping ranges made a 4 KB request an 8.9 MB answer)
  // removed; everything else byte for byte.
  std::string forwarded;

  bool ok() const { return status == 0; }
  const std::string* field(std::string_view name) const;  // first field of that name (any case)
};

// `head`: the bytes up to and including the empty line that ends the head.
RequestHead parse_request_head(std::string_view head, const HeadPolicy& policy);

// Where the head in `buf` ends (one past its empty line), or npos if it has not ended yet.
// Finds "\n\n" too, so that a head with bare LFs is refused rather than waited for.
size_t find_head_end(std::string_view buf);

// A whole HTTP/1.1 error response with a JSON body {"error": {"code", "message"}} and
// "Connection: close" (every refusal here leaves the connection unusable).
std::string error_response(int status, const std::string& code, const std::string& message);
// OpenAI's error "type" for a status, in every error body beside "code" and "message":
// invalid_request_error (4xx), authentication_error (401), permission_error (403),
// rate_limit_error (429), server_error (5xx).
std::string error_type(int status);

// Decodes the framing of a chunked body as its bytes arrive, to know where it
// ends and how large it is before the whole body has been buffered (the bytes
// themselves go to httplib unchanged, which decodes them again).
class ChunkedScanner {
 public:
  enum class State { more, done, error };
  explicit ChunkedScanner(uint64_t max_body) : max_body_(max_body) {}
  // `body`: the bytes received so far from the body's first byte (scanning resumes where the
  // last call stopped); done with end() one past the message, or error with why().
  State scan(std::string_view body);
  size_t end() const { return end_; }
  const std::string& why() const { return why_; }
  bool too_large() const { return too_large_; }

 private:
  enum class Part { size_line, data, data_crlf, trailer } part_ = Part::size_line;
  uint64_t max_body_, total_ = 0, left_ = 0;
  size_t pos_ = 0, end_ = 0, trailer_lines_ = 0;
  bool too_large_ = false;
  std::string why_;
};

}  // namespace mmkit::serve
