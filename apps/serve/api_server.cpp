#include "api_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mmkit/serve/api_error.h"
#include "deadline_http_server.h"
#include "request_adapter.h"
#include "web_assets.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(json_text(j), "application/json");  // error messages may quote invalid UTF-8
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& msg) {
  send_json(res, status, {{"error", {{"code", code}, {"message", msg}}}});
}

// A request body, JSON or multipart/form-data, with typed accessors that fail
// with 400s naming the field (mmkit/serve/request_body.h; fuzzed by fuzz/fuzz_http_request.cpp).
struct Body : RequestBody {
  Body(const httplib::Request& req, const RequestLimits& lim) : RequestBody(request_body(req, lim)) {}
};

json rows_json(const std::vector<Embedding>& es) {
  json a = json::array();
  for (auto& e : es) a.push_back(e);
  return a;
}

Image one_image(const Body& b) {
  std::vector<Image> imgs = b.images();
  if (imgs.size() != 1) api_fail(400, "bad_request", "send exactly one image in 'image', got ", imgs.size());
  return std::move(imgs[0]);
}

// 400 missing_field unless the body has `k` (before any decoding, so a
// request missing a field costs nothing).
void require(const Body& b, const std::string& k, const std::string& what) {
  if (!b.has(k)) api_fail(400, "missing_field", "'", k, "' is required: ", what);
}

// The question's problems as 400s with their own codes (check_question names
// the word / the counts), before the image is decoded.
void check_vqa_question(const VqaService& vqa, const std::string& q, const RequestLimits& lim) {
  if (q.find_first_not_of(" \t\r\n") == std::string::npos)
    api_fail(400, "empty_question", "'question' is empty; ask something about the image");
  check_text(q, lim, "question");
  QuestionProblem p = vqa.check(q);
  switch (p.kind) {
    case QuestionProblem::none: return;
    case QuestionProblem::empty: api_fail(400, "empty_question", p.message);
    case QuestionProblem::unknown_word: api_fail(400, "unknown_word", p.message);
    case QuestionProblem::too_long: api_fail(400, "question_too_long", p.message);
    case QuestionProblem::bad_text: api_fail(400, "bad_text", p.message);
  }
}

void need_text(const ClipService& clip, const char* what) {
  if (!clip.has_text())
    api_fail(501, "no_text_model", what, " needs the CLIP text tower's tokenizer, which is not loaded: ", clip.text_error());
}

std::string base_name(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

ApiServer::ApiServer(ServerModels models, ServerOptions opt)
    : m_(std::move(models)), opt_(opt), http_(std::make_unique<DeadlineHttpServer>(opt.request_timeout_s)) {
  MMKIT_CHECK(m_.clip, "the server needs a CLIP model");
  const int n = std::max(1, opt_.http_threads);
  http_->new_task_queue = [n] { return new httplib::ThreadPool(size_t(n)); };
  http_->set_payload_max_length(opt_.limits.max_body_bytes);
  http_->set_tcp_nodelay(true);  // small JSON responses: no Nagle/delayed-ACK stalls
  http_->set_keep_alive_max_count(100000);
  http_->set_keep_alive_timeout(30);
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(30, 0);
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

nlohmann::json ApiServer::healthz() const {
  const ClipConfig& c = m_.clip->config();
  json j = {{"status", "ok"},
            {"clip",
             {{"model", m_.clip_name},
              {"embed_dim", c.embed_dim},
              {"image_resolution", c.image_resolution},
              {"text", m_.clip->has_text()},
              {"text_error", m_.clip->text_error()}}},
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
  return j;
}

std::string ApiServer::metrics_text() {
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
                                                 {"index", m_.index != nullptr}};
  for (auto& [name, on] : loaded)
    metrics_.set_gauge(std::string("mmkit_model_loaded{model=\"") + name + "\"}", on ? 1 : 0);
  return metrics_.prometheus();
}

void ApiServer::routes() {
  httplib::Server& s = *http_;
  // Every handler: timing + metrics, and errors turned into JSON.
  auto wrap = [this](const std::string& route, std::function<void(const httplib::Request&, httplib::Response&)> fn) {
    return [this, route, fn](const httplib::Request& req, httplib::Response& res) {
      auto t0 = Clock::now();
      res.status = 200;  // httplib leaves -1 until it sends; handlers change it on errors
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status, e.code, e.what());
      } catch (const QueueFull& e) {
        send_error(res, 503, "overloaded", std::string(e.what()) + "; retry later");
      } catch (const Error& e) {
        send_error(res, 400, "bad_request", e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, "internal", e.what());
      }
      metrics_.observe(route, res.status, std::chrono::duration<double>(Clock::now() - t0).count());
    };
  };
  const RequestLimits& lim = opt_.limits;

  s.Get("/", wrap("/", [](const httplib::Request&, httplib::Response& res) {
          const web::Asset& a = web::assets().at("/index.html");
          res.set_content(a.bytes, a.content_type.c_str());
        }));
  for (auto& [path, asset] : web::assets()) {
    if (path == "/index.html") continue;
    const web::Asset* a = &asset;
    s.Get(path, wrap("/assets", [a](const httplib::Request&, httplib::Response& res) {
            res.set_header("Cache-Control", "no-cache");
            res.set_content(a->bytes, a->content_type.c_str());
          }));
  }
  s.Get("/healthz", wrap("/healthz", [this](const httplib::Request&, httplib::Response& res) {
          send_json(res, 200, healthz());
        }));
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  s.Get("/v1/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_text();
    send_json(res, 200, metrics_.json());
  });

  s.Post("/v1/embeddings", wrap("/v1/embeddings", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           Body b(req, lim);
           std::vector<std::string> texts = b.texts("texts", "text");
           std::vector<Image> images = b.images();
           const bool normalize = b.boolean("normalize", true);
           if (texts.empty() && images.empty())
             api_fail(400, "bad_request", "nothing to embed: send 'texts' and/or 'images'");
           if (texts.size() + images.size() > lim.max_items)
             api_fail(400, "too_many_items", texts.size() + images.size(), " texts + images, the limit is ", lim.max_items);
           if (!texts.empty()) need_text(*m_.clip, "text embedding");
           json j = {{"model", m_.clip_name}, {"dim", m_.clip->dim()}, {"normalized", normalize}};
           j["text_embeddings"] = rows_json(m_.clip->embed_texts(texts, normalize));
           j["image_embeddings"] = rows_json(m_.clip->embed_images(images, normalize));
           send_json(res, 200, j);
         }));

  s.Post("/v1/zero-shot", wrap("/v1/zero-shot", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           Body b(req, lim);
           Image img = one_image(b);
           std::vector<std::string> labels = b.list("labels");
           std::vector<std::string> templates = b.strings("templates");
           if (labels.empty()) api_fail(400, "bad_request", "'labels' is required: an array or a comma-separated string");
           if (labels.size() > lim.max_labels)
             api_fail(400, "too_many_items", labels.size(), " labels, the limit is ", lim.max_labels);
           for (size_t i = 0; i < labels.size(); ++i) check_text(labels[i], lim, "labels[" + std::to_string(i) + "]");
           for (size_t i = 0; i < templates.size(); ++i) {
             check_text(templates[i], lim, "templates[" + std::to_string(i) + "]");
             if (templates[i].find("{}") == std::string::npos)
               api_fail(400, "bad_request", "templates[", i, "] '", templates[i], "' has no {} placeholder");
           }
           need_text(*m_.clip, "zero-shot classification");
           ZeroShotProbs z = m_.clip->zero_shot(img, labels, templates);
           send_json(res, 200, {{"labels", labels}, {"probs", z.probs}, {"label", labels[size_t(z.best)]}, {"best", z.best}});
         }));

  s.Post("/v1/classify", wrap("/v1/classify", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           if (!m_.classify) api_fail(501, "not_loaded", "no --classifier model loaded");
           Body b(req, lim);
           Image img = one_image(b);
           const int64_t k = b.integer("top_k", 5, 1, 1000);
           std::vector<LabelProb> r;
           {
             std::lock_guard<std::mutex> l(m_.clip->engine_mutex());
             r = m_.classify(img);
           }
           json top = json::array();
           for (size_t i = 0; i < r.size() && int64_t(i) < k; ++i) top.push_back({{"label", r[i].label}, {"prob", r[i].prob}});
           send_json(res, 200, {{"label", r.empty() ? "" : r[0].label}, {"top", top}});
         }));

  s.Post("/v1/vqa", wrap("/v1/vqa", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           if (!m_.vqa) api_fail(501, "not_loaded", "no VQA model loaded (start the server with --vqa MODEL)");
           Body b(req, lim);
           require(b, "question", "a question about the image, in words the model was trained on");
           if (!b.has("image") && !b.has("images")) require(b, "image", "a PNG or JPEG (base64 in JSON, or a file)");
           const std::string q = b.str("question");
           check_vqa_question(*m_.vqa, q, lim);
           const int64_t top_k = b.integer("top_k", 5, 1, m_.vqa->num_answers());
           Image img = one_image(b);
           VqaAnswer a = m_.vqa->answer(img, q, int(top_k));
           json top = json::array();
           for (auto& [ans, p] : a.top) top.push_back({{"answer", ans}, {"probability", p}});
           send_json(res, 200, {{"model", m_.vqa->name()}, {"question", q}, {"answer", a.answer},
                                {"probability", a.probability}, {"top", top}});
         }));

  s.Post("/v1/caption", wrap("/v1/caption", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           if (!m_.caption) api_fail(501, "not_loaded", "no captioning model loaded (start the server with --caption MODEL)");
           Body b(req, lim);
           if (!b.has("image") && !b.has("images")) require(b, "image", "a PNG or JPEG (base64 in JSON, or a file)");
           GenerateOptions g;
           g.beam = int(b.integer("beam", 1, 1, lim.max_beam));
           g.max_tokens = b.integer("max_tokens", m_.caption->max_len(), 1, m_.caption->max_len());
           const double lp = b.number("length_penalty", 0.6, 0, 10);  // GenerateOptions' default
           g.length_penalty = float(lp);
           Image img = one_image(b);
           ImageCaption c = m_.caption->caption(img, g);
           send_json(res, 200, {{"model", m_.caption->name()}, {"caption", c.text}, {"log_prob", c.gen.log_prob},
                                {"score", c.gen.score}, {"finished", c.gen.finished},
                                {"tokens", c.gen.tokens.size()}, {"beam", g.beam}, {"max_tokens", g.max_tokens},
                                {"length_penalty", lp}});
         }));

  s.Post("/v1/search", wrap("/v1/search", [this, &lim](const httplib::Request& req, httplib::Response& res) {
           if (!m_.index) api_fail(501, "not_loaded", "no --index loaded");
           Body b(req, lim);
           auto t0 = Clock::now();
           const int64_t k = b.integer("k", 12, 1, lim.max_k);
           std::vector<std::string> texts = b.texts("text", "texts");
           std::vector<Image> imgs = b.images();
           if (texts.size() + imgs.size() != 1)
             api_fail(400, "bad_request", "send exactly one query: 'text' or 'image' (got ", texts.size(), " texts, ",
                      imgs.size(), " images)");
           Embedding q;
           if (!texts.empty()) {
             need_text(*m_.clip, "text search");
             q = m_.clip->embed_texts(texts, true)[0];
           } else {
             q = m_.clip->embed_images(imgs, true)[0];
           }
           if (int64_t(q.size()) != m_.index->dim())
             api_fail(500, "dim_mismatch", "the index holds ", m_.index->dim(), "-d embeddings, the model makes ", q.size());
           auto hits = m_.index->search(q.data(), int(k));
           json out = json::array();
           for (auto& h : hits) {
             const index::IndexItem& it = m_.index->item(h.id);
             out.push_back({{"id", h.id}, {"score", h.score}, {"name", base_name(it.path)}, {"width", it.width},
                            {"height", it.height}, {"thumb", "/v1/thumb/" + std::to_string(h.id)}});
           }
           const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
           send_json(res, 200, {{"query", texts.empty() ? "image" : "text"}, {"results", out}, {"took_ms", ms}});
         }));

  s.Get(R"(/v1/thumb/(\d+))", wrap("/v1/thumb", [this](const httplib::Request& req, httplib::Response& res) {
          if (!m_.index) api_fail(501, "not_loaded", "no --index loaded");
          int64_t id = -1;
          try {
            id = std::stoll(req.matches[1].str());
          } catch (const std::exception&) {
          }
          if (id < 0 || id >= m_.index->size())
            api_fail(404, "not_found", "no indexed image ", req.matches[1].str(), " (the index has ", m_.index->size(), ")");
          Image im = decode_image_file(m_.index->item(id).path);
          const int side = opt_.thumb_size, w = im.width, h = im.height;
          if (std::max(w, h) > side) {
            const double f = double(side) / std::max(w, h);
            im = resize_bilinear(im, std::max(1, int(std::lround(w * f))), std::max(1, int(std::lround(h * f))));
          }
          std::vector<uint8_t> png = encode_png(im);
          res.set_header("Cache-Control", "max-age=3600");
          res.set_content(std::string(png.begin(), png.end()), "image/png");
        }));

  // Unmatched routes, and errors httplib raises itself (413 for bodies over
  // the limit): JSON like every other error.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (DeadlineHttpServer::request_timed_out()) {  // httplib's 400 for a request cut by its deadline
      res.status = 408;
      res.set_content(request_timeout_json(opt_.request_timeout_s), "application/json");
    } else if (res.status == 413 || DeadlineHttpServer::request_too_large())
      send_error(res, 413, "payload_too_large",
                 "request body is larger than the limit of " + std::to_string(opt_.limits.max_body_bytes) + " bytes");
    else if (res.status == 404)
      send_error(res, 404, "not_found", "no route " + req.method + " " + req.path);
    else
      send_error(res, res.status, "http_error",
                 "HTTP " + std::to_string(res.status) +
                     (res.status == 400 ? ": malformed request (request line, headers or body framing)" : ""));
    // Not a route's answer: the request could not be read, so neither can what follows it.
    if (res.status == 400 || res.status == 408 || res.status == 413) res.set_header("Connection", "close");
    metrics_.observe("other", res.status, 0);
  });
}

}  // namespace mmkit::serve
