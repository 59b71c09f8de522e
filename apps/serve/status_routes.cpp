// GET /, the page's files, /healthz, /metrics and /v1/metrics.
#include <httplib.h>

#include "api_server.h"
#include "event_http_server.h"
#include "mmkit/index/live_index.h"
#include "mmkit/serve/api_error.h"
#include "route_util.h"
#include "web_assets.h"

namespace mmkit::serve {

using json = nlohmann::json;

void ApiServer::get_page(const Request&, Response& res) {
  const web::Asset& a = web::assets().at("/index.html");
  res.set_content(a.bytes, a.content_type.c_str());
}

void ApiServer::get_asset(const Request& req, Response& res) {
  // The route's pattern is the file name as a regex ("." matches any character).
  auto it = web::assets().find(req.path);
  if (it == web::assets().end()) api_fail(404, "not_found", "no route ", req.method, " ", req.path);
  res.set_header("Cache-Control", "no-cache");
  res.set_content(it->second.bytes, it->second.content_type.c_str());
}

void ApiServer::get_healthz(const Request&, Response& res) { send_json(res, 200, health_json()); }

void ApiServer::get_metrics(const Request&, Response& res) {
  update_gauges();
  res.set_content(metrics_.prometheus(), "text/plain; version=0.0.4");
}

void ApiServer::get_metrics_json(const Request&, Response& res) {
  update_gauges();
  send_json(res, 200, metrics_.json());
}

json ApiServer::health_json() const {
  const ClipConfig& c = m_.clip->config();
  json j = {{"status", "ok"},
            {"clip",
             {{"model", m_.clip_name},
              {"embed_dim", c.embed_dim},
              {"image_resolution", c.image_resolution},
              {"text", m_.clip->has_text()},
              {"text_error", redact_paths(m_.clip->text_error())}}},
            {"classify", bool(m_.classify)},
            {"limits",
             {{"max_body_bytes", opt_.limits.max_body_bytes},
              {"max_image_pixels", opt_.limits.max_image_pixels},
              {"max_text_bytes", opt_.limits.max_text_bytes},
              {"max_items", opt_.limits.max_items},
              {"max_labels", opt_.limits.max_labels},
              {"max_k", opt_.limits.max_k},
              {"max_beam", opt_.limits.max_beam}}}};
  // Loaded models: an object describing each, null when absent (its route answers 501).
  j["vqa"] = m_.vqa ? json{{"model", m_.vqa->name()},
                           {"answers", m_.vqa->num_answers()},
                           {"words", int64_t(m_.vqa->config().vocab.size()) - 2},
                           {"max_question_words", m_.vqa->config().max_question_len - 1},
                           {"image_size", m_.vqa->config().image_size}}
                    : json(nullptr);
  j["caption"] = m_.caption ? json{{"model", m_.caption->name()},
                                   {"words", m_.caption->vocab_size()},
                                   {"max_tokens", m_.caption->max_len()},
                                   {"image_size", m_.caption->config().vision.image_size}}
                            : json(nullptr);
  j["index"] = m_.index ? json{{"size", m_.index->size()}, {"kind", m_.index->info().value("kind", "")}} : json(nullptr);
  if (m_.live) {
    const index::LiveStats st = m_.live->stats();
    j["live_index"] = {{"size", st.count}, {"dim", st.dim}, {"duplicate_threshold", index::kDefaultDuplicateThreshold}};
  } else {
    j["live_index"] = nullptr;
  }
  return j;
}

void ApiServer::update_gauges() {
  auto put = [&](const char* tower, const BatcherStats& s) {
    std::string t = tower;
    metrics_.set_gauge("mmkit_batches_total{tower=\"" + t + "\"}", double(s.batches));
    metrics_.set_gauge("mmkit_batch_items_total{tower=\"" + t + "\"}", double(s.items));
    metrics_.set_gauge("mmkit_batches_full_total{tower=\"" + t + "\"}", double(s.closed_full));
    metrics_.set_gauge("mmkit_batch_mean_size{tower=\"" + t + "\"}", s.batches ? double(s.items) / double(s.batches) : 0);
  };
  put("text", m_.clip->text_stats());
  put("image", m_.clip->image_stats());
  metrics_.set_gauge("mmkit_queue_length", double(m_.clip->queued()));
  const std::pair<const char*, bool> loaded[] = {{"clip", true},           {"classify", bool(m_.classify)},
                                                 {"vqa", m_.vqa != nullptr}, {"caption", m_.caption != nullptr},
                                                 {"index", m_.index != nullptr},
                                                 {"live_index", m_.live != nullptr}};
  for (auto& [name, on] : loaded)
    metrics_.set_gauge(std::string("mmkit_model_loaded{model=\"") + name + "\"}", on ? 1 : 0);
  // The connection loop (event_http_server.h): what idle, slow and hostile clients cost.
  const ConnectionStats cs = http_->stats();
  const std::pair<const char*, int64_t> conn[] = {
      {"mmkit_connections_open", cs.open},
      {"mmkit_connections_busy", cs.busy},
      {"mmkit_connections_accepted_total", cs.accepted},
      {"mmkit_connections_evicted_idle_total", cs.evicted_idle},
      {"mmkit_connections_refused_total", cs.refused_full},
      {"mmkit_accept_backoffs_total", cs.accept_backoffs},
      {"mmkit_connections_timed_out_total{phase=\"idle\"}", cs.timed_out_idle},
      {"mmkit_connections_timed_out_total{phase=\"request\"}", cs.timed_out_request},
      {"mmkit_connections_timed_out_total{phase=\"response\"}", cs.timed_out_response},
      {"mmkit_requests_refused_from_head_total", cs.refused_head},
      {"mmkit_request_bytes_buffered", cs.buffered_bytes}};
  for (auto& [name, v] : conn) metrics_.set_gauge(name, double(v));
}

}  // namespace mmkit::serve
