// apps/serve/http_head: the strict request-head checks the connection loop makes before a body
// byte is read (issue #23: framing, header limits, compressed bodies, Host and Origin), and the
// chunked-framing scanner. The same cases end to end, against a real server: test_hostile_requests.
#include <gtest/gtest.h>

#include "http_head.h"

using namespace mmkit::serve;

namespace {

HeadPolicy policy() {
  HeadPolicy p;
  p.max_body_bytes = 1000;
  return p;
}

RequestHead parse(const std::string& head, const HeadPolicy& p = policy()) { return parse_request_head(head, p); }

void expect_refused(const std::string& head, int status, const std::string& code, const std::string& fragment,
                    const HeadPolicy& p = policy()) {
  RequestHead h = parse(head, p);
  EXPECT_EQ(h.status, status) << head << "\n-> " << h.message;
  EXPECT_EQ(h.code, code) << head;
  EXPECT_NE(h.message.find(fragment), std::string::npos) << "'" << h.message << "' lacks '" << fragment << "'";
}

const std::string kPost = "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n";

}  // namespace

TEST(HttpHead, AcceptsOrdinaryRequests) {
  RequestHead g = parse("GET /healthz HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(g.ok()) << g.message;
  EXPECT_EQ(g.method, "GET");
  EXPECT_EQ(g.target, "/healthz");
  EXPECT_EQ(g.body, RequestHead::Body::none);
  EXPECT_TRUE(g.keep_alive);

  RequestHead p = parse(kPost + "Content-Type: application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.message;
  EXPECT_EQ(p.body, RequestHead::Body::length);
  EXPECT_EQ(p.content_length, 19u);
  EXPECT_FALSE(p.keep_alive);

  RequestHead c = parse(kPost + "Transfer-Encoding: Chunked\r\n\r\n");
  ASSERT_TRUE(c.ok()) << c.message;
  EXPECT_EQ(c.body, RequestHead::Body::chunked);

  // Same Content-Length twice is one value; HTTP/1.0 needs no Host and closes by default.
  EXPECT_TRUE(parse(kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n").ok());
  RequestHead old = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old.ok()) << old.message;
  EXPECT_FALSE(old.keep_alive);
  // IPv6 literal Host; Content-Encoding: identity is no encoding.
  EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").ok());
  EXPECT_TRUE(parse(kPost + "Content-Encoding: identity\r\nContent-Length: 2\r\n\r\n").ok());
}

TEST(HttpHead, ForwardsTheHeadWithoutRangeAndExpect) {
  RequestHead h = parse("GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-1,0-2\r\nIf-Range: x\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(h.ok()) << h.message;
  EXPECT_EQ(h.forwarded, "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n");
  RequestHead e = parse(kPost + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  ASSERT_TRUE(e.ok()) << e.message;
  EXPECT_TRUE(e.expect_continue);
  EXPECT_EQ(e.forwarded.find("Expect"), std::string::npos);
  expect_refused(kPost + "Expect: something-else\r\n\r\n", 417, "expectation_failed", "something-else");
}

TEST(HttpHead, RefusesAmbiguousFraming) {
  const std::string F = "bad_request_framing";
  expect_refused(kPost + "Content-Length: 19\r\nTransfer-Encoding: chunked\r\n\r\n", 400, F, "both Content-Length and Transfer-Encoding");
  expect_refused(kPost + "Content-Length: 19\r\nContent-Length: 20\r\n\r\n", 400, F, "two different Content-Length values");
  for (const char* bad : {"+19", "19abc", "-1", "19, 19", " ", "0x13", "1234567890123456789"})
    expect_refused(kPost + "Content-Length: " + bad + "\r\n\r\n", 400, F, "is not a decimal number");
  expect_refused(kPost + "Transfer-Encoding:\r\n chunked\r\n\r\n", 400, F, "folded");
  expect_refused(kPost + "X-A: a" + std::string(1, '\0') + "b\r\n\r\n", 400, F, "control byte \\x00");
  expect_refused(kPost + "X-A: a\rb\r\n\r\n", 400, F, "bare CR");
  expect_refused("GET / HTTP/1.1\nHost: 127.0.0.1\n\n", 400, F, "bare LF");
  expect_refused(kPost + "Content-Length : 5\r\n\r\n", 400, F, "invalid field name");
  expect_refused("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30\r\n\r\n", 400, F, "GET request with a body");
  expect_refused("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, F, "GET request with a body");
  expect_refused("GET / HTTP/1.1\r\n\r\n", 400, F, "no Host");
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, F, "more than one Host");
  expect_refused("HELLO\r\n\r\n", 400, F, "malformed request line");
  expect_refused("GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505, "http_version", "HTTP/2.0");
  expect_refused(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported_transfer_encoding", "gzip, chunked");
  expect_refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "unsupported_transfer_encoding", "");
  expect_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, F, "HTTP/1.0");
}

TEST(HttpHead, LimitsAndEncodings) {
  std::string many = kPost;
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";  // 101 with Host
  expect_refused(many + "\r\n", 431, "headers_too_large", "101 header fields, the limit is 100");
  expect_refused(kPost + "X-Big: " + std::string(17000, 'b') + "\r\n\r\n", 431, "headers_too_large", "the limit is 16384");
  expect_refused("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "uri_too_long", "8192");
  expect_refused(kPost + "Content-Length: 1001\r\n\r\n", 413, "payload_too_large", "limit of 1000 bytes");
  for (const char* enc : {"gzip", "deflate", "br", "GZIP", "gzip, identity"})
    expect_refused(kPost + "Content-Encoding: " + enc + "\r\nContent-Length: 10\r\n\r\n", 415, "unsupported_content_encoding", enc);
}

TEST(HttpHead, HostAndBrowserPolicy) {
  expect_refused("GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", 403, "host_not_allowed", "attacker.example");
  HeadPolicy p = policy();
  p.allowed_hosts = {"mmkit.lan"};
  EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: MMKIT.lan:8080\r\n\r\n", p).ok());
  expect_refused("GET / HTTP/1.1\r\nHost: other.lan\r\n\r\n", 403, "host_not_allowed", "other.lan", p);
  p.allowed_hosts = {"*"};
  EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: anything.example\r\n\r\n", p).ok());

  const std::string json = "Content-Type: application/json\r\nContent-Length: 2\r\n";
  const std::string form = "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 2\r\n";
  // The page itself: same origin, JSON.
  EXPECT_TRUE(parse(kPost + "Origin: http://127.0.0.1:8080\r\nSec-Fetch-Site: same-origin\r\n" + json + "\r\n").ok());
  // Another site's page, whatever it sends.
  expect_refused(kPost + "Origin: http://attacker.example\r\n" + json + "\r\n", 403, "cross_origin", "attacker.example");
  expect_refused(kPost + "Origin: null\r\n" + form + "\r\n", 403, "cross_origin", "'null'");
  expect_refused(kPost + "Sec-Fetch-Site: cross-site\r\n" + form + "\r\n", 403, "cross_origin", "cross-site");
  // A browser form (no preflight) needs the custom header; curl (no browser headers) does not.
  expect_refused(kPost + "Origin: http://127.0.0.1:8080\r\n" + form + "\r\n", 403, "cross_origin", "X-Mmkit-Client");
  EXPECT_TRUE(parse(kPost + "Origin: http://127.0.0.1:8080\r\nX-Mmkit-Client: page\r\n" + form + "\r\n").ok());
  EXPECT_TRUE(parse(kPost + form + "\r\n").ok());
}

TEST(HttpHead, FindsTheEndOfTheHead) {
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), 27u);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n"), std::string::npos);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\n\nX"), 16u);  // found, then refused as bare LF
}

TEST(HttpHead, ChunkedScannerFindsTheEndAndTheSize) {
  ChunkedScanner s(100);
  std::string body = "5\r\nhello\r\n";
  EXPECT_EQ(s.scan(body), ChunkedScanner::State::more);
  body += "6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n";
  EXPECT_EQ(s.scan(body), ChunkedScanner::State::more);
  body += "\r\nGET /next";
  ASSERT_EQ(s.scan(body), ChunkedScanner::State::done);
  EXPECT_EQ(body.substr(s.end()), "GET /next");

  ChunkedScanner big(10);
  EXPECT_EQ(big.scan("b\r\n"), ChunkedScanner::State::error);
  EXPECT_TRUE(big.too_large());
  for (const char* bad : {"zz\r\n", "5\r\nhelloXX", "-1\r\n", "\r\n"}) {
    ChunkedScanner b(100);
    EXPECT_EQ(b.scan(bad), ChunkedScanner::State::error) << bad;
    EXPECT_FALSE(b.too_large());
  }
}
