// The HTTP/JSON API and web page of `mmkit serve` (cpp-httplib). A thin layer:
// request parsing and JSON shapes live here; models, batching, limits,
// metrics and the index are the library's (mmkit/serve, mmkit/index).
//
//   mmkit::serve::ApiServer s(models, opts);
//   int port = s.bind("127.0.0.1", 0);   // 0: an ephemeral port
//   std::thread t([&] { s.run(); });  ...  s.stop(); t.join();
//
// Routes (JSON bodies, or multipart/form-data with "image" files and text fields):
//   GET  /  /app.js  /style.css     the web page (compiled in)
//   GET  /healthz                   what is loaded, limits
//   GET  /metrics                   Prometheus text: requests by route/status, latency histograms, batches
//   GET  /v1/metrics                the same as JSON
//   POST /v1/embeddings             {"texts": [...], "images": [base64...], "normalize": true}
//   POST /v1/zero-shot              {"image": b64, "labels": [...], "templates": [...]}
//   POST /v1/classify               {"image": b64, "top_k": 5}          (needs --classifier)
//   POST /v1/vqa                    {"image": b64, "question": "...", "top_k": 5}   (needs --vqa)
//   POST /v1/caption                {"image": b64, "beam": 1, "max_tokens": N, "length_penalty": 0.6}
//                                                                       (needs --caption)
//   POST /v1/search                 {"text": "..."} or {"image": b64}, "top_k": 5   (needs --index)
//   GET  /v1/thumb/<id>             PNG thumbnail of an indexed image
//   The live index (needs --live-index; docs/LIVE_INDEX.md), index_routes.cpp:
//   POST   /v1/index/items          {"id", "image", "metadata"}: add (201; 409 duplicate_id)
//   PUT    /v1/index/items/<id>     {"image"?, "metadata"?}: replace what is given (404 unknown_id)
//   DELETE /v1/index/items/<id>     remove (404 unknown_id)
//   GET    /v1/index/items/<id>     its metadata;  GET /v1/index/items/<id>/thumb: its PNG thumbnail
//   POST   /v1/index/search         {"text" | "image" | "vector", "top_k", "filter", "min_score"}
//   POST   /v1/index/duplicates     {"threshold", "filter"}: near-duplicate groups
//   POST   /v1/index/compact        snapshot + empty log;  GET /v1/index: counts and log size
// Errors: {"error": {"code": "...", "message": "..."}} with a 4xx/5xx status, from every
// route (route_util.h's answer_route) and for requests no route takes.
// Handlers: one member function per route, registered by the table in routes()
// (api_server.cpp); their bodies are in status_routes.cpp, clip_routes.cpp and model_routes.cpp.
// Connections: EventHttpServer (one epoll loop owns the sockets; a handler thread only gets a
// complete request whose head passed http_head.h's checks; deadlines, caps), request bodies:
// RequestBody (mmkit/serve/request_body.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mmkit/index/embedding_index.h"
#include "mmkit/index/thumbnail_cache.h"
#include "mmkit/serve/caption_service.h"
#include "mmkit/serve/clip_service.h"
#include "mmkit/serve/metrics.h"
#include "mmkit/serve/model_slots.h"
#include "mmkit/serve/request_limits.h"
#include "mmkit/serve/vqa_service.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace mmkit::index {
class LiveIndex;
}  // namespace mmkit::index

namespace mmkit::serve {

class EventHttpServer;

struct ServerModels {
  ClipService* clip = nullptr;             // required
  std::string clip_name;                   // shown by /healthz
  const index::EmbeddingIndex* index = nullptr;
  ClassifyFn classify;
  VqaService* vqa = nullptr;          // /v1/vqa (501 not_loaded without)
  CaptionService* caption = nullptr;  // /v1/caption (501 not_loaded without)
  index::LiveIndex* live = nullptr;   // /v1/index/... (501 not_loaded without)
};

struct ServerOptions {
  RequestLimits limits;
  int http_threads = 64;  // requests handled at once (idle and slow connections hold none)
  int thumb_size = 160;   // longest side of /v1/thumb images
  size_t thumb_cache_bytes = 16u << 20;  // thumbnails kept (PNG bytes, LRU)
  double request_timeout_s = 30;   // a request's bytes must all arrive within this (slow clients: 408)
  double idle_timeout_s = 30;      // a connection must start a request within this
  double response_timeout_s = 30;  // a client must take its whole response within this
  size_t max_connections = 4096;   // open at once (the longest-idle one makes room)
  size_t max_per_client = 256;     // open at once from one address
  std::vector<std::string> allowed_hosts;  // Host names besides IP literals and localhost ("*": any)
  int live_thumb_size = 128;  // longest side of the thumbnail stored with an item added to the live index
};

class ApiServer {
 public:
  ApiServer(ServerModels models, ServerOptions opt);
  ~ApiServer();
  // Binds host:port (port 0 = ephemeral); returns the port. Throws mmkit::Error if it cannot.
  int bind(const std::string& host, int port);
  void run();   // serves until stop()
  void stop();
  Metrics& metrics() { return metrics_; }

 private:
  using Request = httplib::Request;
  using Response = httplib::Response;
  void routes();

  // status_routes.cpp
  void get_page(const Request& req, Response& res);   // GET /
  void get_asset(const Request& req, Response& res);  // GET /app.js, /style.css, ...
  void get_healthz(const Request& req, Response& res);
  void get_metrics(const Request& req, Response& res);       // Prometheus text
  void get_metrics_json(const Request& req, Response& res);  // GET /v1/metrics
  nlohmann::json health_json() const;
  void update_gauges();  // batcher, queue and loaded-model gauges, refreshed per scrape
  // clip_routes.cpp: CLIP and the index
  void post_embeddings(const Request& req, Response& res);
  void post_zero_shot(const Request& req, Response& res);
  void post_search(const Request& req, Response& res);
  void get_thumb(const Request& req, Response& res);  // GET /v1/thumb/<id>
  // model_routes.cpp: the optional models (501 not_loaded without them)
  void post_classify(const Request& req, Response& res);
  void post_vqa(const Request& req, Response& res);
  void post_caption(const Request& req, Response& res);
  // index_routes.cpp: the live index (501 not_loaded without --live-index)
  void post_index_item(const Request& req, Response& res);    // POST /v1/index/items
  void put_index_item(const Request& req, Response& res);     // PUT /v1/index/items/<id>
  void delete_index_item(const Request& req, Response& res);  // DELETE /v1/index/items/<id>
  void get_index_item(const Request& req, Response& res);     // GET /v1/index/items/<id>
  void get_index_thumb(const Request& req, Response& res);    // GET /v1/index/items/<id>/thumb
  void post_index_search(const Request& req, Response& res);
  void post_index_duplicates(const Request& req, Response& res);
  void post_index_compact(const Request& req, Response& res);
  void get_index_stats(const Request& req, Response& res);    // GET /v1/index
  index::LiveIndex& live() const;  // 501 without one

  ServerModels m_;
  ServerOptions opt_;
  Metrics metrics_;
  std::unique_ptr<EventHttpServer> http_;
  std::unique_ptr<index::ThumbnailCache> thumbs_;  // with an index
};

}  // namespace mmkit::serve
