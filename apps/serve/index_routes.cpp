// The live index over HTTP (docs/LIVE_INDEX.md): add, update, remove and read
// items, filtered search, near-duplicate groups, compaction. Images are decoded
// and embedded on the request thread through CLIP's batcher, then the change goes
// to LiveIndex, which returns once it is fsynced in the write-ahead log: the 2xx
// is sent only after that.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>

#include "api_server.h"
#include "mmkit/index/image_fingerprint.h"
#include "mmkit/index/live_index.h"
#include "mmkit/index/thumbnail_cache.h"
#include "mmkit/serve/api_error.h"
#include "request_adapter.h"
#include "route_util.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;

std::string id_param(const httplib::Request& req) {
  const std::string id = req.matches[1].str();
  try {
    index::check_item_id(id);
  } catch (const Error& e) {
    api_fail(400, "bad_id", e.what());
  }
  return id;
}

json metadata_of(const RequestBody& b) {
  json m = b.json_field("metadata", "bad_metadata");
  if (m.is_null()) return json::object();
  try {
    index::check_metadata(m);
  } catch (const Error& e) {
    api_fail(400, "bad_metadata", e.what());
  }
  return m;
}

index::MetadataFilter filter_of(const RequestBody& b) {
  const json f = b.json_field("filter", "bad_filter");
  try {
    return index::MetadataFilter::parse(f);
  } catch (const Error& e) {
    api_fail(400, "bad_filter", e.what());
  }
}

// The log could not take the change: not acknowledged. The log gets the path, the client not.
[[noreturn]] void storage_failed(const index::StorageError& e) {
  std::fprintf(stderr, "serve: live index: %s\n", e.what());
  api_fail(503, "storage_error", "the change could not be made durable (", redact_paths(e.what()), "); it is not acknowledged");
}

json item_json(const std::string& id, const json& metadata, int w, int h, bool thumb) {
  return {{"id", id},
          {"metadata", metadata},
          {"width", w},
          {"height", h},
          {"thumb", thumb ? json("/v1/index/items/" + id + "/thumb") : json(nullptr)}};
}

}  // namespace

index::LiveIndex& ApiServer::live() const {
  if (!m_.live) api_fail(501, "not_loaded", "no live index loaded (start the server with --live-index DIR)");
  return *m_.live;
}

namespace {

struct EmbeddedImage {
  Embedding e;
  index::LiveItem image;  // size, thumbnail and fingerprint (id and metadata unused)
};

// Decodes the request's one image, embeds it (normalised) and makes its thumbnail.
EmbeddedImage embed_one(ClipService& clip, const RequestBody& b, int thumb_side) {
  Image im = one_image(b);
  EmbeddedImage out;
  out.image.width = im.width;
  out.image.height = im.height;
  out.image.thumb_png = index::thumbnail_png(im, thumb_side);
  out.image.fingerprint = index::image_fingerprint(im);
  out.e = clip.embed_images({std::move(im)}, true)[0];
  return out;
}

}  // namespace

void ApiServer::post_index_item(const Request& req, Response& res) {
  index::LiveIndex& li = live();
  RequestBody b = request_body(req, opt_.limits);
  require(b, "id", "the new item's id");
  const std::string id = b.str("id");
  try {
    index::check_item_id(id);
  } catch (const Error& e) {
    api_fail(400, "bad_id", e.what());
  }
  json meta = metadata_of(b);  // checked before the image is decoded
  if (li.get(id)) api_fail(409, "duplicate_id", "id '", id, "' is already in the index (update it with PUT, or remove it first)");
  EmbeddedImage x = embed_one(*m_.clip, b, opt_.live_thumb_size);
  try {
    li.add({id, meta, x.image.width, x.image.height, x.image.thumb_png, x.image.fingerprint}, x.e.data());
  } catch (const index::DuplicateItemId& e) {  // added by another request meanwhile
    api_fail(409, "duplicate_id", e.what());
  } catch (const index::StorageError& e) {
    storage_failed(e);
  }
  send_json(res, 201, item_json(id, meta, x.image.width, x.image.height, true));
}

void ApiServer::put_index_item(const Request& req, Response& res) {
  index::LiveIndex& li = live();
  const std::string id = id_param(req);
  RequestBody b = request_body(req, opt_.limits);
  std::optional<json> meta;
  if (b.has("metadata")) meta = metadata_of(b);
  if (!meta && b.image_count() == 0) api_fail(400, "bad_request", "nothing to update: send 'metadata' and/or 'image'");
  if (!li.get(id)) api_fail(404, "unknown_id", "no item with id '", id, "' in the index");
  EmbeddedImage x;
  if (b.image_count() > 0) x = embed_one(*m_.clip, b, opt_.live_thumb_size);
  try {
    li.update(id, meta, x.e.empty() ? nullptr : x.e.data(), x.image);
  } catch (const index::UnknownItemId& e) {  // removed by another request meanwhile
    api_fail(404, "unknown_id", e.what());
  } catch (const index::StorageError& e) {
    storage_failed(e);
  }
  auto it = li.get(id);
  if (!it) api_fail(404, "unknown_id", "no item with id '", id, "' in the index");
  send_json(res, 200, item_json(id, it->metadata, it->width, it->height, !it->thumb_png.empty()));
}

void ApiServer::delete_index_item(const Request& req, Response& res) {
  index::LiveIndex& li = live();
  const std::string id = id_param(req);
  try {
    li.remove(id);
  } catch (const index::UnknownItemId& e) {
    api_fail(404, "unknown_id", e.what());
  } catch (const index::StorageError& e) {
    storage_failed(e);
  }
  send_json(res, 200, {{"id", id}, {"removed", true}});
}

void ApiServer::get_index_item(const Request& req, Response& res) {
  const std::string id = id_param(req);
  auto it = live().get(id);
  if (!it) api_fail(404, "unknown_id", "no item with id '", id, "' in the index");
  send_json(res, 200, item_json(id, it->metadata, it->width, it->height, !it->thumb_png.empty()));
}

void ApiServer::get_index_thumb(const Request& req, Response& res) {
  const std::string id = id_param(req);
  auto it = live().get(id);
  if (!it) api_fail(404, "unknown_id", "no item with id '", id, "' in the index");
  if (it->thumb_png.empty()) api_fail(404, "no_thumbnail", "item '", id, "' was added without a thumbnail");
  res.set_content(it->thumb_png, "image/png");
}

void ApiServer::post_index_search(const Request& req, Response& res) {
  index::LiveIndex& li = live();
  const RequestLimits& lim = opt_.limits;
  RequestBody b = request_body(req, lim);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t k = b.integer("top_k", 5, 1, lim.max_k);
  const double min_score = b.number("min_score", -1, -1, 1);
  index::MetadataFilter filter = filter_of(b);  // checked before any embedding
  std::vector<std::string> texts = b.texts("text", "texts");
  const size_t n_images = b.image_count();
  const json vec = b.json_field("vector", "bad_request");
  const size_t queries = texts.size() + n_images + (vec.is_null() ? 0 : 1);
  if (queries != 1)
    api_fail(400, "bad_request", "send exactly one query: 'text', 'image' or 'vector' (got ", texts.size(), " texts, ",
             n_images, " images, ", vec.is_null() ? 0 : 1, " vectors)");
  Embedding q;
  std::string kind;
  if (!vec.is_null()) {
    kind = "vector";
    if (!vec.is_array() || int64_t(vec.size()) != li.dim())
      api_fail(400, "bad_request", "'vector' must be an array of ", li.dim(), " numbers, got ",
               vec.is_array() ? std::to_string(vec.size()) + " values" : std::string(vec.type_name()));
    double norm = 0;
    for (size_t i = 0; i < vec.size(); ++i) {
      if (!vec[i].is_number()) api_fail(400, "bad_request", "vector[", i, "] is not a number");
      q.push_back(vec[i].get<float>());
      if (!std::isfinite(q.back())) api_fail(400, "bad_request", "vector[", i, "] is not finite");
      norm += double(q.back()) * q.back();
    }
    if (!(norm > 0)) api_fail(400, "bad_request", "'vector' is all zeros");
    for (float& v : q) v = float(v / std::sqrt(norm));  // scores are cosines, as for text and images
  } else if (!texts.empty()) {
    kind = "text";
    need_text(*m_.clip, "text search");
    q = m_.clip->embed_texts(texts, true)[0];
  } else {
    kind = "image";
    q = m_.clip->embed_images({b.image(0)}, true)[0];
  }
  if (int64_t(q.size()) != li.dim())
    api_fail(500, "dim_mismatch", "the index holds ", li.dim(), "-d embeddings, the model makes ", q.size());
  auto hits = li.search(q.data(), int(k), filter, float(min_score));
  json out = json::array();
  for (auto& h : hits) {
    json r = item_json(h.id, h.metadata, h.width, h.height, h.has_thumb);
    r["rank"] = out.size() + 1;
    r["score"] = h.score;
    out.push_back(std::move(r));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  send_json(res, 200, {{"query", kind}, {"results", out}, {"took_ms", ms}});
}

void ApiServer::post_index_duplicates(const Request& req, Response& res) {
  index::LiveIndex& li = live();
  RequestBody b = request_body(req, opt_.limits);
  const double t = b.number("threshold", index::kDefaultDuplicateThreshold, -1, 1);
  index::MetadataFilter filter = filter_of(b);
  const auto t0 = std::chrono::steady_clock::now();
  auto groups = li.duplicate_groups(float(t), filter);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  send_json(res, 200, {{"threshold", t}, {"groups", groups}, {"took_ms", ms}});
}

void ApiServer::post_index_compact(const Request&, Response& res) {
  index::LiveIndex& li = live();
  const int64_t before = li.stats().wal_records;
  li.compact();
  const index::LiveStats st = li.stats();
  send_json(res, 200, {{"size", st.count}, {"log_records_compacted", before}, {"snapshot_bytes", st.snapshot_bytes}});
}

void ApiServer::get_index_stats(const Request&, Response& res) {
  const index::LiveStats st = live().stats();
  send_json(res, 200, {{"size", st.count}, {"dim", st.dim}, {"log_records", st.wal_records}, {"log_bytes", st.wal_bytes},
                       {"snapshot_bytes", st.snapshot_bytes}, {"seq", st.seq}, {"compactions", st.compactions},
                       {"duplicate_threshold", index::kDefaultDuplicateThreshold}});
}

}  // namespace mmkit::serve
