// OpenAI's embeddings API on POST /v1/embeddings, and GET /v1/models: what
// OpenAI's clients (and the tools built on them) send and expect, so that they
// work when pointed at `mmkit serve` (base URL http://host:port/v1).
//
// Request: {"model": name, "input": string | [string | {"text": s} | {"image": data URL or
// base64}], "encoding_format": "float" | "base64", "dimensions": D}. The object items are
// Jina's convention for images; plain strings are texts. Response:
//   {"object": "list", "model": name, "data": [{"object": "embedding", "index": i,
//    "embedding": [E floats] or base64 of E little-endian float32}],
//    "usage": {"prompt_tokens": n, "total_tokens": n}}
// in the input's order; embeddings are L2-normalised (as OpenAI's are) unless "normalize": false.
// usage counts each text's tokens up to and including its end token; images count 0.
#include <httplib.h>

#include <cstring>

#include "api_server.h"
#include "mmkit/serve/api_error.h"
#include "route_util.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "base64 embeddings are little-endian float32: memcpy below");

std::string base64_floats(const Embedding& e) {
  return encode_base64(reinterpret_cast<const uint8_t*>(e.data()), e.size() * sizeof(float));
}

json model_json(const std::string& name, const ClipService& clip) {
  // "created" is required by OpenAI's schema; a served model has no creation time of its own.
  return {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "mmkit"},
          {"embed_dim", clip.dim()}, {"text", clip.has_text()}, {"image_resolution", clip.image_resolution()}};
}

// One item of "input": a text or an image (base64, a data URL's prefix already allowed).
struct InputItem {
  bool image = false;
  const std::string* value = nullptr;
  std::string field;  // input[i] or input[i].image, for errors
};

std::vector<InputItem> input_items(const json& in) {
  std::vector<InputItem> items;
  auto one = [&](const json& v, const std::string& field) {
    if (v.is_string()) return items.push_back({false, &v.get_ref<const std::string&>(), field});
    if (v.is_number_integer() || (v.is_array() && !v.empty() && v[0].is_number_integer()))
      api_fail_param(400, "bad_request", "input",
                     field, ": token ids are not accepted (the model's own tokenizer runs here): send text");
    if (!v.is_object())
      api_fail_param(400, "bad_request", "input", field, " must be a string or an object {\"text\": ...} or {\"image\": ...}, got ",
                     v.type_name());
    const bool t = v.contains("text"), im = v.contains("image");
    if (t == im)
      api_fail_param(400, "bad_request", "input", field, " must have exactly one of \"text\" and \"image\"");
    const std::string key = t ? "text" : "image";
    const json& x = v[key];
    if (!x.is_string()) api_fail_param(400, "bad_request", "input", field, ".", key, " must be a string, got ", x.type_name());
    const std::string& s = x.get_ref<const std::string&>();
    if (im && (s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0))
      api_fail_param(400, "bad_image", "input", field,
                     ".image is a URL: the server fetches nothing; send the image's bytes as base64 or a data URL");
    items.push_back({im, &s, field + "." + key});
  };
  if (in.is_array()) {
    if (in.empty()) api_fail_param(400, "bad_request", "input", "'input' is an empty array: nothing to embed");
    if (in[0].is_number_integer()) one(in, "input");  // [ids...]: one tokenized text
    for (size_t i = 0; i < in.size(); ++i) one(in[i], "input[" + std::to_string(i) + "]");
  } else {
    one(in, "input");
  }
  return items;
}

}  // namespace

ClipService& ApiServer::clip_for(const RequestBody& b, std::string* name) const {
  const json* m = b.json_value("model");
  std::string want;
  if (m) {
    if (!m->is_string()) api_fail_param(400, "bad_request", "model", "'model' must be a string, got ", m->type_name());
    want = m->get<std::string>();
  } else if (b.has("model")) {
    want = b.str("model");  // a multipart field
  }
  if (want.empty()) {
    *name = m_.clips.front().first;
    return *m_.clips.front().second;
  }
  std::string served;
  for (const auto& [n, c] : m_.clips) {
    if (n == want) {
      *name = n;
      return *c;
    }
    served += (served.empty() ? "'" : ", '") + n + "'";
  }
  api_fail_param(404, "model_not_found", "model", "model '", want, "' is not served here; served: ", served,
                 " (GET /v1/models)");
}

void ApiServer::post_embeddings_openai(const RequestBody& b, Response& res) {
  const RequestLimits& lim = opt_.limits;
  const std::string format = b.has("encoding_format") ? b.str("encoding_format") : "float";
  if (format != "float" && format != "base64")
    api_fail_param(400, "bad_request", "encoding_format", "'encoding_format' must be \"float\" or \"base64\", got '",
                   format, "'");
  std::string name;
  ClipService& clip = clip_for(b, &name);
  if (b.has("dimensions")) {
    // OpenAI's text-embedding-3 models shorten their embeddings on request; a CLIP's are not
    // trained to be cut, so only its own size is accepted.
    const int64_t d = b.integer("dimensions", clip.dim(), 1, 1 << 20);
    if (d != clip.dim())
      api_fail_param(400, "unsupported_dimensions", "dimensions", "model '", name, "' makes ", clip.dim(),
                     "-dimensional embeddings and cannot shorten them: 'dimensions' must be ", clip.dim(), " or absent");
  }
  const bool normalize = b.boolean("normalize", true);
  std::vector<InputItem> items = input_items(*b.json_value("input"));
  if (items.size() > lim.max_items)
    api_fail_param(400, "too_many_items", "input", items.size(), " inputs, the limit is ", lim.max_items);
  std::vector<std::string> texts;
  std::vector<const InputItem*> images;
  for (const InputItem& it : items) {
    if (it.image) {
      images.push_back(&it);
      continue;
    }
    check_text(*it.value, lim, it.field);
    texts.push_back(*it.value);
  }
  if (!texts.empty()) need_text(clip, "text embedding");
  // Checked before any forward: every image's base64 is decoded when its turn comes (one at a time).
  const std::vector<Embedding> te = clip.embed_texts(texts, normalize);
  const std::vector<Embedding> ie = clip.embed_images(
      images.size(),
      [&](size_t i) {
        const std::vector<uint8_t> bytes = decode_base64(*images[i]->value, images[i]->field);
        return decode_request_image(bytes.data(), bytes.size(), lim, images[i]->field);
      },
      normalize);
  size_t tokens = 0;
  for (size_t n : texts.empty() ? std::vector<size_t>{} : clip.token_counts(texts)) tokens += n;
  json data = json::array();
  size_t ti = 0, ii = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const Embedding& e = items[i].image ? ie[ii++] : te[ti++];
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", format == "base64" ? json(base64_floats(e)) : json(e)}});
  }
  send_json(res, 200, {{"object", "list"}, {"data", std::move(data)}, {"model", name},
                       {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

void ApiServer::get_models(const Request&, Response& res) {
  json data = json::array();
  for (const auto& [n, c] : m_.clips) data.push_back(model_json(n, *c));
  send_json(res, 200, {{"object", "list"}, {"data", std::move(data)}});
}

void ApiServer::get_model(const Request& req, Response& res) {
  const std::string want = req.matches[1].str();
  std::string served;
  for (const auto& [n, c] : m_.clips) {
    if (n == want) return send_json(res, 200, model_json(n, *c));
    served += (served.empty() ? "'" : ", '") + n + "'";
  }
  api_fail_param(404, "model_not_found", "model", "model '", want, "' is not served here; served: ", served);
}

}  // namespace mmkit::serve
