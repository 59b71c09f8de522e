// Fuzz target: the server's HTTP request parsing, in process and without sockets. The input is
// the raw bytes a client sends (request line, headers, Content-Length or chunked body, JSON or
// multipart/form-data with base64 or uploaded images). httplib's Server::process_request (the
// code every connection runs) reads them from an in-memory stream, routes them, and the handlers
// parse the body exactly as apps/serve/api_server.cpp's routes do (the live index's routes
// included: item ids, metadata, and the filter language, parsed and matched): request_body() (request_adapter.h)
// then the accessors each route calls, in the same order — everything up to the model call.
// Contract: a response is always written and is never 5xx; a refused body is an ApiError with a
// 4xx status and a message (mmkit::Error is answered 400 by the server and allowed too); any other
// exception, sanitizer report, leak or hang is a finding. httplib is the uninstrumented Debian
// build, so coverage feedback comes from mmkit's parsers; ASan still checks what httplib hands them.
#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "fuzz_common.h"
#include "mmkit/index/live_index.h"
#include "mmkit/index/metadata_filter.h"
#include "mmkit/serve/api_error.h"
#include "request_adapter.h"

using namespace mmkit;
using namespace mmkit::serve;

namespace {

// The client's bytes in, the server's response out.
class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(const uint8_t* d, size_t n) : in_(reinterpret_cast<const char*>(d), n) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* p, size_t n) override {
    n = std::min(n, in_.size() - pos_);
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* p, size_t n) override {
    out.append(p, n);
    return ssize_t(n);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 40000; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 8080; }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  std::string in_;
  size_t pos_ = 0;
};

// Small limits so that the 413 paths are reachable from inputs of a few KB.
RequestLimits limits() {
  RequestLimits l;
  l.max_body_bytes = 48 << 10;
  l.max_image_pixels = 1'000'000;
  l.max_text_bytes = 200;
  l.max_items = 8;
  return l;
}

// What each route of api_server.cpp parses, in its order (the model calls left out).
void parse_route(const std::string& path, const RequestBody& b, const RequestLimits& lim) {
  if (path == "/v1/embeddings") {
    b.texts("texts", "text");
    b.images();
    b.boolean("normalize", true);
  } else if (path == "/v1/zero-shot") {
    b.images();
    std::vector<std::string> labels = b.list("labels"), templates = b.strings("templates");
    for (size_t i = 0; i < labels.size(); ++i) check_text(labels[i], lim, "labels[" + std::to_string(i) + "]");
    for (size_t i = 0; i < templates.size(); ++i) check_text(templates[i], lim, "templates[" + std::to_string(i) + "]");
  } else if (path == "/v1/classify") {
    b.images();
    b.integer("top_k", 5, 1, 1000);
  } else if (path == "/v1/vqa") {
    b.images();
    check_text(b.str("question"), lim, "question");
  } else if (path == "/v1/caption") {
    b.images();
  } else if (path == "/v1/search") {
    b.integer("k", 12, 1, lim.max_k);
    b.texts("text", "texts");
    b.images();
  } else if (path == "/v1/index/items") {  // index_routes.cpp: id, metadata, then the image
    index::check_item_id(b.str("id"));
    const nlohmann::json m = b.json_field("metadata", "bad_metadata");
    if (!m.is_null()) index::check_metadata(m);
    b.images();
  } else if (path == "/v1/index/search" || path == "/v1/index/duplicates") {
    b.integer("top_k", 5, 1, lim.max_k);
    b.number("min_score", -1, -1, 1);
    // The filter language (index/metadata_filter.h): parsed, then matched against the request's
    // own metadata field and fixed objects, since matching must never fail either.
    const index::MetadataFilter f = index::MetadataFilter::parse(b.json_field("filter", "bad_filter"));
    const nlohmann::json m = b.json_field("metadata", "bad_metadata");
    if (m.is_object()) (void)f.matches(m);
    (void)f.matches(nlohmann::json::object());
    (void)f.matches(nlohmann::json{{"year", 2020}, {"tag", {"a", 1, nullptr}}, {"place", {{"city", "Oslo"}}}});
    b.texts("text", "texts");
    (void)b.json_field("vector", "bad_request");
  }
  (void)b.has("image");
}

class FuzzServer : public httplib::Server {
 public:
  FuzzServer() {
    set_payload_max_length(lim_.max_body_bytes);
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      res.status = 200;
      try {
        parse_route(req.path, request_body(req, lim_), lim_);
      } catch (const ApiError& e) {
        if (e.status < 400 || e.status >= 500 || std::strlen(e.what()) == 0 || e.code.empty())
          fuzz::violated("a refused request must be a 4xx ApiError with a code and a message");
        res.status = e.status;
        // The server's error body (api_server.cpp send_error): must not throw on invalid UTF-8.
        res.set_content(json_text({{"error", {{"code", e.code}, {"message", e.what()}}}}), "application/json");
      } catch (const Error& e) {
        if (std::strlen(e.what()) == 0) fuzz::violated("mmkit::Error without a message");
        res.status = 400;
        res.set_content(json_text({{"error", {{"code", "bad_request"}, {"message", e.what()}}}}), "application/json");
      }
    };
    // As the server's error handler: unknown routes quote the (URL-decoded, any bytes) path.
    set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      res.set_content(json_text({{"error", {{"code", "http_error"}, {"message", "no route " + req.method + " " + req.path}}}}),
                      "application/json");
    });
    for (const char* p : {"/v1/embeddings", "/v1/zero-shot", "/v1/classify", "/v1/vqa", "/v1/caption", "/v1/search",
                          "/v1/index/items", "/v1/index/search", "/v1/index/duplicates"})
      Post(p, handler);
  }
  std::string serve(const uint8_t* d, size_t n) {
    MemoryStream s(d, n);
    bool closed = false;
    process_request(s, /*close_connection=*/true, closed, [](httplib::Request&) {});
    return s.out;
  }

 private:
  RequestLimits lim_ = limits();
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzServer* server = new FuzzServer;  // routes compiled once
  std::string out = server->serve(data, size);
  // httplib answers every request line it could read ("HTTP/1.1 NNN ..."); never with a 5xx.
  if (out.size() >= 12 && out.compare(0, 5, "HTTP/") == 0) {
    const size_t sp = out.find(' ');
    if (sp != std::string::npos && sp + 1 < out.size() && out[sp + 1] == '5') {
      std::fprintf(stderr, "response: %.200s\n", out.c_str());
      fuzz::violated("5xx response to a client's bytes");
    }
  }
  return 0;
}
