// A server-side TLS configuration (OpenSSL, Debian libssl-dev; the same
// library cpp-httplib's HTTPS support is built on): certificate chain and
// private key from PEM files, TLS 1.2 or newer, no renegotiation.
// EventHttpServer runs each connection's TLS in its one epoll loop on
// non-blocking sockets, so HTTPS keeps the loop's deadlines and caps
// (httplib's own SSLServer would give every connection a blocked thread).
//
//   auto tls = std::make_shared<TlsContext>("cert.pem", "key.pem");   // throws naming the file
//   server.set_tls(tls);
#pragma once
#include <string>

typedef struct ssl_ctx_st SSL_CTX;

namespace mmkit::serve {

class TlsContext {
 public:
  // Throws mmkit::Error naming the file and OpenSSL's reason if either cannot be loaded or the
  // key does not belong to the certificate.
  TlsContext(const std::string& cert_pem, const std::string& key_pem);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

// OpenSSL's queued errors of this thread as one line (and the queue cleared).
std::string openssl_errors();

}  // namespace mmkit::serve
