#include "api_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mmkit/serve/api_error.h"
#include "web_assets.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& msg) {
  send_json(res, status, {{"error", {{"code", code}, {"message", msg}}}});
}

// A request body, JSON or multipart/form-data, with typed accessors that fail
// with 400s naming the field.
class Body {
 public:
  Body(const httplib::Request& req, const RequestLimits& lim) : lim_(lim) {
    const std::string ct = req.get_header_value("Content-Type");
    if (req.is_multipart_form_data()) {
      multipart_ = true;
      for (auto& [name, f] : req.files) {
        if (!f.filename.empty() || name == "image" || name == "images")
          files_.emplace_back(name, f.content);
        else
          fields_.emplace_back(name, f.content);
      }
      return;
    }
    if (ct.rfind("application/json", 0) != 0 && !(ct.empty() && !req.body.empty() && req.body[0] == '{'))
      api_fail(415, "unsupported_media_type", "Content-Type '", ct,
               "': send application/json or multipart/form-data");
    if (req.body.empty()) api_fail(400, "bad_request", "empty request body; expected a JSON object");
    try {
      j_ = json::parse(req.body);
    } catch (const json::exception& e) {
      api_fail(400, "bad_json", "request body is not valid JSON: ", e.what());
    }
    if (!j_.is_object()) api_fail(400, "bad_json", "request body must be a JSON object, got ", j_.type_name());
  }

  bool has(const std::string& k) const {
    if (multipart_) {
      for (auto& f : fields_)
        if (f.first == k) return true;
      for (auto& f : files_)
        if (f.first == k) return true;
      return false;
    }
    return j_.contains(k) && !j_[k].is_null();
  }

  // Strings under `k` (a string or an array of strings; multipart: every field named k).
  std::vector<std::string> strings(const std::string& k) const {
    std::vector<std::string> out;
    if (multipart_) {
      for (auto& f : fields_)
        if (f.first == k) out.push_back(f.second);
      return out;
    }
    if (!j_.contains(k) || j_[k].is_null()) return out;
    const json& v = j_[k];
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) api_fail(400, "bad_request", "'", k, "' must be a string or an array of strings");
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) api_fail(400, "bad_request", k, "[", i, "] must be a string, got ", v[i].type_name());
      out.push_back(v[i].get<std::string>());
    }
    return out;
  }

  // A list given as a JSON array or as one comma-separated string ("cat, dog").
  std::vector<std::string> list(const std::string& k) const {
    std::vector<std::string> raw = strings(k), out;
    const bool split = multipart_ || (j_.contains(k) && j_[k].is_string());
    for (auto& s : raw) {
      if (!split) {
        out.push_back(s);
        continue;
      }
      size_t a = 0;
      while (a <= s.size()) {
        size_t b = s.find(',', a);
        if (b == std::string::npos) b = s.size();
        std::string part = s.substr(a, b - a);
        part.erase(0, part.find_first_not_of(" \t\r\n"));
        part.erase(part.find_last_not_of(" \t\r\n") + 1);
        if (!part.empty()) out.push_back(part);
        a = b + 1;
      }
    }
    return out;
  }

  std::string str(const std::string& k) const {
    auto v = strings(k);
    if (v.size() > 1) api_fail(400, "bad_request", "'", k, "' must be a single string");
    return v.empty() ? std::string() : v[0];
  }

  int64_t integer(const std::string& k, int64_t def, int64_t lo, int64_t hi) const {
    int64_t v = def;
    if (multipart_) {
      std::string s = str(k);
      if (s.empty()) return def;
      try {
        size_t pos = 0;
        v = std::stoll(s, &pos);
        if (pos != s.size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        api_fail(400, "bad_request", "'", k, "' must be an integer, got '", s, "'");
      }
    } else if (j_.contains(k) && !j_[k].is_null()) {
      if (!j_[k].is_number_integer()) api_fail(400, "bad_request", "'", k, "' must be an integer");
      v = j_[k].get<int64_t>();
    }
    if (v < lo || v > hi) api_fail(400, "bad_request", "'", k, "' = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }

  double number(const std::string& k, double def, double lo, double hi) const {
    double v = def;
    if (multipart_) {
      std::string s = str(k);
      if (s.empty()) return def;
      try {
        size_t pos = 0;
        v = std::stod(s, &pos);
        if (pos != s.size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        api_fail(400, "bad_request", "'", k, "' must be a number, got '", s, "'");
      }
    } else if (j_.contains(k) && !j_[k].is_null()) {
      if (!j_[k].is_number()) api_fail(400, "bad_request", "'", k, "' must be a number");
      v = j_[k].get<double>();
    }
    if (!(v >= lo && v <= hi)) api_fail(400, "bad_request", "'", k, "' = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }

  bool boolean(const std::string& k, bool def) const {
    if (multipart_) {
      std::string s = str(k);
      if (s.empty()) return def;
      if (s == "true" || s == "1") return true;
      if (s == "false" || s == "0") return false;
      api_fail(400, "bad_request", "'", k, "' must be true or false, got '", s, "'");
    }
    if (!j_.contains(k) || j_[k].is_null()) return def;
    if (!j_[k].is_boolean()) api_fail(400, "bad_request", "'", k, "' must be true or false");
    return j_[k].get<bool>();
  }

  // Images under "image"/"images": base64 strings in JSON, files in multipart.
  std::vector<Image> images() const {
    std::vector<Image> out;
    int i = 0;
    if (multipart_) {
      for (auto& [name, bytes] : files_) {
        if (name != "image" && name != "images") continue;
        std::string field = name + "[" + std::to_string(i++) + "]";
        out.push_back(decode_request_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), lim_, field));
      }
      return out;
    }
    for (const char* k : {"image", "images"}) {
      std::vector<std::string> b64 = strings(k);
      for (size_t n = 0; n < b64.size(); ++n) {
        std::string field = std::string(k) + (std::string(k) == "images" ? "[" + std::to_string(n) + "]" : "");
        std::vector<uint8_t> bytes = decode_base64(b64[n], field);
        out.push_back(decode_request_image(bytes.data(), bytes.size(), lim_, field));
      }
    }
    return out;
  }

  std::vector<std::string> texts(const char* a, const char* b) const {
    std::vector<std::string> out = strings(a), more = strings(b);
    out.insert(out.end(), more.begin(), more.end());
    for (size_t i = 0; i < out.size(); ++i) check_text(out[i], lim_, std::string(a) + "[" + std::to_string(i) + "]");
    return out;
  }

 private:
  const RequestLimits& lim_;
  bool multipart_ = false;
  json j_;
  std::vector<std::pair<std::string, std::string>> fields_, files_;
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
    : m_(std::move(models)), opt_(opt), http_(std::make_unique<httplib::Server>()) {
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

void ApiServer::run() { http_->listen_after_bind(); }

void ApiServer::stop() {
  if (http_) http_->stop();
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
    if (res.status == 413)
      send_error(res, 413, "payload_too_large",
                 "request body is larger than the limit of " + std::to_string(opt_.limits.max_body_bytes) + " bytes");
    else if (res.status == 404)
      send_error(res, 404, "not_found", "no route " + req.method + " " + req.path);
    else
      send_error(res, res.status, "http_error", "HTTP " + std::to_string(res.status));
    metrics_.observe("other", res.status, 0);
  });
}

}  // namespace mmkit::serve
