#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mmkit/core/error.h"

namespace mmkit::serve {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

TlsContext::TlsContext(const std::string& cert_pem, const std::string& key_pem) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_server_method());
  MMKIT_CHECK(ctx_, "TLS: cannot create a context: ", openssl_errors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // No renegotiation: a client could make a non-blocking read want to write forever.
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Writes go out as the socket takes them, from a buffer that may move between attempts.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  auto fail_with = [&](const std::string& what) {
    const std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    fail(what, ": ", why);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx_, cert_pem.c_str()) != 1)
    fail_with("--tls-cert " + cert_pem + ": not a readable PEM certificate (chain)");
  if (SSL_CTX_use_PrivateKey_file(ctx_, key_pem.c_str(), SSL_FILETYPE_PEM) != 1)
    fail_with("--tls-key " + key_pem + ": not a readable, unencrypted PEM private key");
  if (SSL_CTX_check_private_key(ctx_) != 1)
    fail_with("--tls-key " + key_pem + " does not belong to the certificate of --tls-cert " + cert_pem);
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

}  // namespace mmkit::serve
