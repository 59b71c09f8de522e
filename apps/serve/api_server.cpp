// ApiServer's lifecycle and its route table. Every route runs inside
// answer_route (route_util.h): errors become {"error": {"code", "message"}}
// and each request is counted under the route's metrics label.
#include "api_server.h"

#include <httplib.h>

#include <algorithm>

#include "event_http_server.h"
#include "route_util.h"
#include "web_assets.h"

namespace mmkit::serve {

namespace {

ConnectionLimits connection_limits(const ServerOptions& o) {
  ConnectionLimits c;
  c.workers = std::max(1, o.http_threads);
  c.max_connections = o.max_connections;
  c.max_per_client = o.max_per_client;
  c.idle_timeout_s = o.idle_timeout_s;
  c.request_timeout_s = o.request_timeout_s;
  c.response_timeout_s = o.response_timeout_s;
  c.head.max_body_bytes = o.limits.max_body_bytes;
  c.head.allowed_hosts = o.allowed_hosts;
  // Request bytes held at once (bodies being received and in handlers): room for several
  // requests at the body limit, at most 1 GB.
  c.max_buffered_bytes = std::min<size_t>(size_t(1) << 30, std::max<size_t>(8 * o.limits.max_body_bytes, 64u << 20));
  return c;
}

}  // namespace

ApiServer::ApiServer(ServerModels models, ServerOptions opt)
    : m_(std::move(models)), opt_(opt), http_(std::make_unique<EventHttpServer>(connection_limits(opt))) {
  MMKIT_CHECK(m_.clip, "the server needs a CLIP model");
  if (m_.index)
    thumbs_ = std::make_unique<index::ThumbnailCache>(*m_.index, opt_.thumb_size, opt_.thumb_cache_bytes,
                                                      opt_.limits.max_image_pixels);
  http_->on_refusal = [this](int status, const std::string&) { metrics_.observe("other", status, 0); };
  routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind(const std::string& host, int port) {
  int p = port == 0 ? http_->bind_to_any_port(host.c_str()) : (http_->bind_to_port(host.c_str(), port) ? port : -1);
  MMKIT_CHECK(p > 0, "cannot listen on ", host, ":", port, " (in use, or not a local address?)");
  return p;
}

void ApiServer::run() { http_->serve(); }

void ApiServer::stop() {
  if (http_) http_->shutdown();
}

void ApiServer::routes() {
  enum Method { GET, POST, PUT, DELETE };
  struct Route {
    Method method;
    std::string pattern;  // httplib's: a regex matched against the whole path
    std::string label;    // the route in the metrics
    void (ApiServer::*handler)(const Request&, Response&);
  };
  std::vector<Route> table = {
      {GET, "/", "/", &ApiServer::get_page},
      {GET, "/healthz", "/healthz", &ApiServer::get_healthz},
      {GET, "/metrics", "/metrics", &ApiServer::get_metrics},
      {GET, "/v1/metrics", "/v1/metrics", &ApiServer::get_metrics_json},
      {POST, "/v1/embeddings", "/v1/embeddings", &ApiServer::post_embeddings},
      {POST, "/v1/zero-shot", "/v1/zero-shot", &ApiServer::post_zero_shot},
      {POST, "/v1/search", "/v1/search", &ApiServer::post_search},
      {GET, R"(/v1/thumb/(\d+))", "/v1/thumb", &ApiServer::get_thumb},
      {POST, "/v1/classify", "/v1/classify", &ApiServer::post_classify},
      {POST, "/v1/vqa", "/v1/vqa", &ApiServer::post_vqa},
      {POST, "/v1/caption", "/v1/caption", &ApiServer::post_caption},
      {GET, "/v1/index", "/v1/index", &ApiServer::get_index_stats},
      {POST, "/v1/index/items", "/v1/index/items", &ApiServer::post_index_item},
      {PUT, "/v1/index/items/([^/]+)", "/v1/index/items/<id>", &ApiServer::put_index_item},
      {DELETE, "/v1/index/items/([^/]+)", "/v1/index/items/<id>", &ApiServer::delete_index_item},
      {GET, "/v1/index/items/([^/]+)", "/v1/index/items/<id>", &ApiServer::get_index_item},
      {GET, "/v1/index/items/([^/]+)/thumb", "/v1/index/items/<id>/thumb", &ApiServer::get_index_thumb},
      {POST, "/v1/index/search", "/v1/index/search", &ApiServer::post_index_search},
      {POST, "/v1/index/duplicates", "/v1/index/duplicates", &ApiServer::post_index_duplicates},
      {POST, "/v1/index/compact", "/v1/index/compact", &ApiServer::post_index_compact},
  };
  // The page's other files, counted together; the page itself is "/" only.
  for (auto& [path, asset] : web::assets())
    if (path != "/index.html") table.push_back({GET, path, "/assets", &ApiServer::get_asset});

  for (const Route& r : table) {
    auto handler = [this, label = r.label, fn = r.handler](const Request& req, Response& res) {
      answer_route(metrics_, label, res, [&] { (this->*fn)(req, res); });
    };
    switch (r.method) {
      case GET: http_->Get(r.pattern, handler); break;
      case POST: http_->Post(r.pattern, handler); break;
      case PUT: http_->Put(r.pattern, handler); break;
      case DELETE: http_->Delete(r.pattern, handler); break;
    }
  }

  // Unmatched routes, and errors httplib raises itself: JSON like every other
  // error. httplib calls this for a route's 4xx/5xx too, which already has its
  // JSON body. (Framing, size, timeout and Host refusals never get here: the
  // connection loop answers them from the head, event_http_server.h.)
  http_->set_error_handler([this](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, 413, "payload_too_large",
                 "request body is larger than the limit of " + std::to_string(opt_.limits.max_body_bytes) + " bytes");
    else if (res.status == 404)
      send_error(res, 404, "not_found", "no route " + req.method + " " + req.path);
    else
      send_error(res, res.status, "http_error",
                 "HTTP " + std::to_string(res.status) +
                     (res.status == 400 ? ": malformed request (request line, headers or body framing)" : ""));
    // Not a route's answer: the request could not be read, so neither can what follows it.
    if (res.status == 400 || res.status == 413) res.set_header("Connection", "close");
    metrics_.observe("other", res.status, 0);
  });
}

}  // namespace mmkit::serve
