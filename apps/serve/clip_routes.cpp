// POST /v1/embeddings, /v1/zero-shot, /v1/search and GET /v1/thumb/<id>: CLIP
// (ClipService: the request thread decodes and tokenizes, the towers' batchers
// run the forwards) and the image index.
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "api_server.h"
#include "mmkit/image/image.h"
#include "mmkit/serve/api_error.h"
#include "request_adapter.h"
#include "route_util.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;

json rows_json(const std::vector<Embedding>& es) {
  json a = json::array();
  for (auto& e : es) a.push_back(e);
  return a;
}

std::string base_name(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

void ApiServer::post_embeddings(const Request& req, Response& res) {
  const RequestLimits& lim = opt_.limits;
  RequestBody b = request_body(req, lim);
  if (b.has("input")) return post_embeddings_openai(b, res);  // OpenAI's shape (openai_routes.cpp)
  std::string name;
  ClipService& clip = clip_for(b, &name);
  std::vector<std::string> texts = b.texts("texts", "text");
  const size_t n_images = b.image_count();  // counted before any is decoded
  const bool normalize = b.boolean("normalize", true);
  if (texts.empty() && n_images == 0) api_fail(400, "bad_request", "nothing to embed: send 'texts' and/or 'images'");
  if (texts.size() + n_images > lim.max_items)
    api_fail(400, "too_many_items", texts.size() + n_images, " texts + images, the limit is ", lim.max_items);
  if (!texts.empty()) need_text(clip, "text embedding");
  json j = {{"model", name}, {"dim", clip.dim()}, {"normalized", normalize}};
  j["text_embeddings"] = rows_json(clip.embed_texts(texts, normalize));
  // One image decoded and preprocessed at a time (RequestBody::image).
  j["image_embeddings"] = rows_json(clip.embed_images(n_images, [&](size_t i) { return b.image(i); }, normalize));
  send_json(res, 200, j);
}

void ApiServer::post_zero_shot(const Request& req, Response& res) {
  const RequestLimits& lim = opt_.limits;
  RequestBody b = request_body(req, lim);
  if (b.image_count() != 1) one_image(b);  // its 400, before the labels; decoding waits for the checks
  std::vector<std::string> labels = b.list("labels");
  std::vector<std::string> templates = b.strings("templates");
  if (labels.empty()) api_fail(400, "bad_request", "'labels' is required: an array or a comma-separated string");
  if (labels.size() > lim.max_labels) api_fail(400, "too_many_items", labels.size(), " labels, the limit is ", lim.max_labels);
  // Each label x template is a prompt to tokenize and embed: bounded before any is built.
  const size_t prompts = labels.size() * std::max<size_t>(1, templates.size());
  if (prompts > lim.max_prompts)
    api_fail(400, "too_many_prompts", labels.size(), " labels x ", templates.size(), " templates = ", prompts,
             " prompts, the limit is ", lim.max_prompts);
  for (size_t i = 0; i < labels.size(); ++i) check_text(labels[i], lim, "labels[" + std::to_string(i) + "]");
  for (size_t i = 0; i < templates.size(); ++i) {
    check_text(templates[i], lim, "templates[" + std::to_string(i) + "]");
    if (templates[i].find("{}") == std::string::npos)
      api_fail(400, "bad_request", "templates[", i, "] '", templates[i], "' has no {} placeholder");
  }
  std::string name;
  ClipService& clip = clip_for(b, &name);
  need_text(clip, "zero-shot classification");
  Image img = one_image(b);
  ZeroShotProbs z = clip.zero_shot(img, labels, templates);
  send_json(res, 200, {{"labels", labels}, {"probs", z.probs}, {"label", labels[size_t(z.best)]}, {"best", z.best},
                       {"probability", z.probs[size_t(z.best)]}, {"probabilities", z.kind}});
}

void ApiServer::post_search(const Request& req, Response& res) {
  if (!m_.index) api_fail(501, "not_loaded", "no --index loaded");
  const RequestLimits& lim = opt_.limits;
  RequestBody b = request_body(req, lim);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t k = b.integer("top_k", 5, 1, lim.max_k);  // `mmkit search --top-k`
  std::vector<std::string> texts = b.texts("text", "texts");
  const size_t n_images = b.image_count();
  if (texts.size() + n_images != 1)
    api_fail(400, "bad_request", "send exactly one query: 'text' or 'image' (got ", texts.size(), " texts, ", n_images,
             " images)");
  Embedding q;
  if (!texts.empty()) {
    need_text(*m_.clip, "text search");
    q = m_.clip->embed_texts(texts, true)[0];
  } else {
    q = m_.clip->embed_images({b.image(0)}, true)[0];
  }
  if (int64_t(q.size()) != m_.index->dim())
    api_fail(500, "dim_mismatch", "the index holds ", m_.index->dim(), "-d embeddings, the model makes ", q.size());
  auto hits = m_.index->search(q.data(), int(k));
  json out = json::array();
  for (auto& h : hits) {
    const index::IndexItem& it = m_.index->item(h.id);
    out.push_back({{"rank", out.size() + 1}, {"id", h.id}, {"score", h.score}, {"name", base_name(it.path)}, {"width", it.width},
                   {"height", it.height}, {"thumb", "/v1/thumb/" + std::to_string(h.id)}});
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  send_json(res, 200, {{"query", texts.empty() ? "image" : "text"}, {"results", out}, {"took_ms", ms}});
}

// A PNG of the indexed image, its longest side at most opt_.thumb_size (ThumbnailCache).
void ApiServer::get_thumb(const Request& req, Response& res) {
  if (!m_.index) api_fail(501, "not_loaded", "no --index loaded");
  int64_t id = -1;
  try {
    id = std::stoll(req.matches[1].str());
  } catch (const std::exception&) {  // more digits than an int64: not an id either
  }
  if (id < 0 || id >= m_.index->size())
    api_fail(404, "not_found", "no indexed image ", req.matches[1].str(), " (the index has ", m_.index->size(), ")");
  std::shared_ptr<const std::string> png;
  try {
    png = thumbs_->get(id);
  } catch (const Error& e) {
    // The reason names the file's path and may quote its bytes (a file replaced by a symlink to
    // something else): the log gets it, the client only the item's name.
    std::fprintf(stderr, "serve: thumbnail %lld: %s\n", (long long)id, e.what());
    api_fail(404, "image_unavailable", "indexed image ", id, " (", base_name(m_.index->item(id).path),
             ") cannot be read or is too large for a thumbnail; the server log says why");
  }
  res.set_header("Cache-Control", "max-age=3600");
  res.set_content(*png, "image/png");
}

}  // namespace mmkit::serve
