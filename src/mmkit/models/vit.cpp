#include "mmkit/models/vit.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include "mmkit/autograd/functions.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/util/file_util.h"

namespace mmkit {

void VitConfig::validate() const {
  // Upper bounds far above any real ViT keep every derived size (patch grid, parameter shapes)
  // free of int64 overflow, so a hostile config is refused here rather than in an allocation.
  auto range = [](const char* name, int64_t v, int64_t max) {
    MMKIT_CHECK(v > 0, "ViT config: ", name, " must be positive, got ", v);
    MMKIT_CHECK(v <= max, "ViT config: ", name, " ", v, " is larger than the supported maximum ", max);
  };
  range("image_size", image_size, 16384);
  range("patch_size", patch_size, 16384);
  range("channels", channels, 1024);
  range("dim", dim, 1 << 20);
  range("depth", depth, 4096);
  range("heads", heads, 1 << 20);
  range("mlp_dim", mlp_dim, 1 << 22);
  // 0 = encoder only (the captioner uses the patch tokens).
  MMKIT_CHECK(num_classes >= 0 && num_classes <= (1 << 24), "ViT config: num_classes must be in 0..2^24 (0 = encoder only), got ", num_classes);
  MMKIT_CHECK(image_size % patch_size == 0, "ViT config: image_size ", image_size,
              " is not a multiple of patch_size ", patch_size);
  MMKIT_CHECK(dim % heads == 0, "ViT config: dim ", dim, " is not divisible by heads ", heads);
  MMKIT_CHECK(dropout >= 0.f && dropout < 1.f, "ViT config: dropout must be in [0, 1)");
  MMKIT_CHECK(class_names.empty() || int64_t(class_names.size()) == num_classes,
              "ViT config: ", class_names.size(), " class names for ", num_classes, " classes");
  nn::activation_from_name(activation);
  for (const auto* v : {&pixel_mean, &pixel_std})
    MMKIT_CHECK(v->empty() || int64_t(v->size()) == channels, "ViT config: pixel_mean/pixel_std need ",
                channels, " values (one per channel), got ", v->size());
  for (float s : pixel_std)
    MMKIT_CHECK(s > 0.f && std::isfinite(s), "ViT config: pixel_std values must be positive and finite");
  for (float m : pixel_mean) MMKIT_CHECK(std::isfinite(m), "ViT config: pixel_mean values must be finite");
  MMKIT_CHECK(eps > 0.f && std::isfinite(eps), "ViT config: layer_norm_eps must be positive and finite, got ", eps);
}

std::string VitConfig::to_json() const {
  nlohmann::json j;
  j["model"] = "vit";
  j["image_size"] = image_size;
  j["patch_size"] = patch_size;
  j["channels"] = channels;
  j["dim"] = dim;
  j["depth"] = depth;
  j["heads"] = heads;
  j["mlp_dim"] = mlp_dim;
  j["num_classes"] = num_classes;
  j["norm_first"] = norm_first;
  j["activation"] = activation;
  j["dropout"] = dropout;
  j["layer_norm_eps"] = eps;
  j["class_names"] = class_names;
  j["pixel_mean"] = pixel_mean;
  j["pixel_std"] = pixel_std;
  j["preprocess"] = preprocess;
  return j.dump();
}

VitConfig VitConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("ViT config is not valid JSON: ", e.what());
  }
  MMKIT_CHECK(j.is_object(), "ViT config must be a JSON object");
  VitConfig c;
  auto get_int = [&](const char* k, int64_t& out) {
    if (!j.contains(k)) fail("ViT config: missing field '", k, "'");
    MMKIT_CHECK(j[k].is_number_integer(), "ViT config: field '", k, "' must be an integer");
    out = j[k].get<int64_t>();
  };
  get_int("image_size", c.image_size);
  get_int("patch_size", c.patch_size);
  get_int("channels", c.channels);
  get_int("dim", c.dim);
  get_int("depth", c.depth);
  get_int("heads", c.heads);
  get_int("mlp_dim", c.mlp_dim);
  get_int("num_classes", c.num_classes);
  if (j.contains("norm_first")) {
    MMKIT_CHECK(j["norm_first"].is_boolean(), "ViT config: 'norm_first' must be a boolean");
    c.norm_first = j["norm_first"].get<bool>();
  }
  if (j.contains("activation")) {
    MMKIT_CHECK(j["activation"].is_string(), "ViT config: 'activation' must be a string");
    c.activation = j["activation"].get<std::string>();
  }
  if (j.contains("dropout")) {
    MMKIT_CHECK(j["dropout"].is_number(), "ViT config: 'dropout' must be a number");
    c.dropout = j["dropout"].get<float>();
  }
  if (j.contains("layer_norm_eps")) {
    MMKIT_CHECK(j["layer_norm_eps"].is_number(), "ViT config: 'layer_norm_eps' must be a number");
    c.eps = j["layer_norm_eps"].get<float>();
  }
  if (j.contains("class_names")) {
    MMKIT_CHECK(j["class_names"].is_array(), "ViT config: 'class_names' must be an array");
    for (auto& s : j["class_names"]) {
      MMKIT_CHECK(s.is_string(), "ViT config: class names must be strings");
      c.class_names.push_back(s.get<std::string>());
    }
  }
  if (j.contains("preprocess")) {
    MMKIT_CHECK(j["preprocess"].is_string(), "ViT config: 'preprocess' must be a string");
    c.preprocess = j["preprocess"].get<std::string>();
  }
  for (const char* key : {"pixel_mean", "pixel_std"}) {
    if (!j.contains(key)) continue;
    MMKIT_CHECK(j[key].is_array(), "ViT config: '", key, "' must be an array of numbers");
    auto& dst = std::string(key) == "pixel_mean" ? c.pixel_mean : c.pixel_std;
    for (auto& v : j[key]) {
      MMKIT_CHECK(v.is_number(), "ViT config: '", key, "' must be an array of numbers");
      dst.push_back(v.get<float>());
    }
  }
  c.validate();
  return c;
}

VitConfig VitConfig::from_hf_json(const std::string& text, const std::string& where, int64_t heads) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  MMKIT_CHECK(j.is_object(), where, " is not a JSON object");
  auto num = [&](const char* k, int64_t d) {
    if (!j.contains(k)) return d;
    MMKIT_CHECK(j[k].is_number_integer(), where, ": '", k, "' must be an integer");
    return j[k].get<int64_t>();
  };
  VitConfig c;
  c.dim = num("hidden_size", 768);
  c.depth = num("num_hidden_layers", 12);
  c.heads = heads > 0 ? heads : num("num_attention_heads", 12);
  c.mlp_dim = num("intermediate_size", 3072);
  c.image_size = num("image_size", 224);
  c.patch_size = num("patch_size", 16);
  c.channels = num("num_channels", 3);
  c.eps = 1e-12f;
  if (j.contains("layer_norm_eps")) {
    MMKIT_CHECK(j["layer_norm_eps"].is_number(), where, ": 'layer_norm_eps' must be a number");
    c.eps = j["layer_norm_eps"].get<float>();
  }
  c.norm_first = true;
  if (j.contains("id2label") && j["id2label"].is_object()) {
    const nlohmann::json& labels = j["id2label"];
    c.num_classes = int64_t(labels.size());
    for (int64_t k = 0; k < c.num_classes; ++k) {
      const std::string key = std::to_string(k);
      if (!labels.contains(key)) {
        c.class_names.push_back(key);
        continue;
      }
      MMKIT_CHECK(labels[key].is_string(), where, ": id2label['", key, "'] must be a string");
      c.class_names.push_back(labels[key].get<std::string>());
    }
  } else {
    c.num_classes = num("num_labels", 2);
  }
  c.preprocess = "imagenet";
  c.validate();
  return c;
}

void Vit::init(const VitConfig& c, uint64_t seed) {
  c.validate();
  cfg = c;
  Rng rng(seed);
  const int64_t D = c.dim;
  patch_embed.init("patch_embed", c.channels, D, c.patch_size, true, rng);
  // Token and position embeddings: N(0, 0.02) truncated (the ViT/timm init);
  // no weight decay on embeddings.
  cls_token.init("cls_token", Shape{1, 1, D}, false);
  nn::init_trunc_normal(cls_token, 0.02f, rng);
  pos_embed.init("pos_embed", Shape{1, c.num_patches() + 1, D}, false);
  nn::init_trunc_normal(pos_embed, 0.02f, rng);
  nn::EncoderLayerConfig lc;
  lc.dim = D;
  lc.heads = c.heads;
  lc.mlp_dim = c.mlp_dim;
  lc.act = nn::activation_from_name(c.activation);
  lc.norm_first = c.norm_first;
  lc.dropout = c.dropout;
  lc.eps = c.eps;
  layers.clear();
  layers.resize(size_t(c.depth));
  for (int64_t i = 0; i < c.depth; ++i)
    layers[size_t(i)].init("encoder.layers." + std::to_string(i), lc, rng);
  if (c.norm_first) norm.init("norm", D, c.eps);
  if (c.num_classes > 0) head.init("head", D, c.num_classes, true, rng);
}

nn::ParamList Vit::parameters() {
  nn::ParamList p;
  patch_embed.collect(p);
  p.push_back(&cls_token);
  p.push_back(&pos_embed);
  for (auto& l : layers) l.collect(p);
  if (cfg.norm_first) norm.collect(p);
  if (cfg.num_classes > 0) head.collect(p);
  return p;
}

namespace {

// Patch embeddings + class token + positions (+ dropout): [B, P+1, D].
Var vit_tokens(Graph& g, Vit& m, Var images) {
  const Shape s = g.shape(images);
  MMKIT_CHECK(s.n == 4 && s[1] == m.cfg.channels && s[2] == m.cfg.image_size &&
                  s[3] == m.cfg.image_size,
              "ViT: expected images [B, ", m.cfg.channels, ", ", m.cfg.image_size, ", ",
              m.cfg.image_size, "], got ", s.str());
  const int64_t B = s[0];
  Var x = nn::patch_embedding(g, m.patch_embed, images);              // [B, P, D]
  Var cls = ag::broadcast_batch(g, g.param(m.cls_token), B);         // [B, 1, D]
  x = ag::concat(g, {cls, x}, 1);                                    // [B, P+1, D]
  x = ag::add_broadcast(g, x, g.param(m.pos_embed));                 // + [1, P+1, D]
  return ag::dropout(g, x, m.cfg.dropout);
}

}  // namespace

Var vit_encode(Graph& g, Vit& m, Var images) {
  Var x = vit_tokens(g, m, images);
  for (auto& layer : m.layers) x = nn::transformer_encoder_layer(g, layer, x);
  return x;
}

Var vit_forward(Graph& g, Vit& m, Var images) {
  MMKIT_CHECK(m.cfg.num_classes > 0, "ViT: this model has no classification head (num_classes 0)");
  Var x = vit_tokens(g, m, images);                                  // [B, P+1, D]
  const int64_t B = g.shape(x)[0], D = g.shape(x)[2];
  Var c;
  if (m.layers.empty()) {
    c = ag::select_token(g, x, 0);
  } else {
    // The head reads the class token only, so the last layer computes that
    // row alone (keys/values still from every token): exact, forward and backward.
    for (size_t i = 0; i + 1 < m.layers.size(); ++i) x = nn::transformer_encoder_layer(g, m.layers[i], x);
    c = ag::reshape(g, nn::transformer_encoder_layer_at(g, m.layers.back(), x, 0), Shape{B, D});  // [B, D]
  }
  if (m.cfg.norm_first) c = nn::layer_norm(g, m.norm, c);
  return nn::linear(g, m.head, c);                                   // [B, K]
}

// ------------------------------------------------------------------ loading

namespace {

int64_t count_layers(const io::SafetensorsFile& f, const std::string& pre, const std::string& post) {
  int64_t n = 0;
  while (f.find(pre + std::to_string(n) + post)) ++n;
  return n;
}

const io::TensorView& need(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  MMKIT_CHECK(t, f.path(), ": expected tensor '", name, "' is missing");
  return *t;
}

VitConfig torchvision_config(const io::SafetensorsFile& f, int64_t heads) {
  VitConfig c;
  const auto& conv = need(f, "conv_proj.weight");
  MMKIT_CHECK(conv.shape.size() == 4, f.path(), ": conv_proj.weight should be [D, C, p, p]");
  c.dim = conv.shape[0];
  c.channels = conv.shape[1];
  c.patch_size = conv.shape[2];
  const auto& pos = need(f, "encoder.pos_embedding");
  int64_t n = pos.shape.size() == 3 ? pos.shape[1] - 1 : 0, side = int64_t(std::lround(std::sqrt(double(n))));
  MMKIT_CHECK(n > 0 && side * side == n, f.path(), ": encoder.pos_embedding does not describe a square patch grid");
  c.image_size = side * c.patch_size;
  c.depth = count_layers(f, "encoder.layers.encoder_layer_", ".ln_1.weight");
  c.mlp_dim = need(f, "encoder.layers.encoder_layer_0.mlp.0.weight").shape[0];
  c.num_classes = need(f, "heads.head.weight").shape[0];
  auto it = f.metadata().find("config");
  if (heads <= 0 && it != f.metadata().end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_object() && j.contains("num_heads") && j["num_heads"].is_number_integer()) heads = j["num_heads"];
  }
  MMKIT_CHECK(heads > 0, f.path(), ": the attention head count cannot be inferred from tensor shapes; pass "
              "--heads N (vit_b_16: 12) or store {\"num_heads\": N} in the metadata 'config'");
  c.heads = heads;
  c.norm_first = true;
  c.eps = 1e-6f;
  c.preprocess = "imagenet";
  return c;
}

VitConfig hf_vit_config(const std::string& path, int64_t heads) {
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  std::string cj = (dir.empty() ? "." : dir) + "/config.json";
  std::string text = io::read_text_file(cj);
  MMKIT_CHECK(!text.empty(), path, ": Hugging Face ViT checkpoint without ", cj);
  return VitConfig::from_hf_json(text, cj, heads);
}

}  // namespace

Vit load_vit(const std::string& model_path, int64_t heads) {
  const std::string path = resolve_model_file(model_path, "train one with `mmkit train vit --out DIR`");
  auto file = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
  io::Layout layout = io::detect_layout(*file);
  Vit vit;
  if (layout == io::Layout::torchvision_vit || layout == io::Layout::hf_vit) {
    VitConfig cfg = layout == io::Layout::torchvision_vit ? torchvision_config(*file, heads)
                                                           : hf_vit_config(path, heads);
    PreprocessConfig pre = preprocess_preset(cfg.preprocess, int(cfg.image_size));
    cfg.pixel_mean.assign(pre.mean.begin(), pre.mean.end());
    cfg.pixel_std.assign(pre.std.begin(), pre.std.end());
    vit.init(cfg, 0);
    io::Remapped r = io::remap(file, layout);
    // Extra tensors a fixture may carry are not part of the model.
    for (auto it = r.unused.begin(); it != r.unused.end();)
      it = (it->rfind("input.", 0) == 0 || it->rfind("output.", 0) == 0) ? r.unused.erase(it) : it + 1;
    io::bind_remapped(r, vit.parameters(), path);
    return vit;
  }
  MMKIT_CHECK(layout == io::Layout::mmkit, path, " is a checkpoint in the ", io::layout_name(layout),
              " layout, not a ViT classifier");
  auto it = file->metadata().find("config");
  MMKIT_CHECK(it != file->metadata().end(), path, ": no 'config' in the safetensors metadata; not an mmkit ViT model");
  VitConfig cfg = VitConfig::from_json(it->second);
  if (heads > 0) cfg.heads = heads;
  vit.init(cfg, 0);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(*file, vit.parameters(), lo);
  return vit;
}

}  // namespace mmkit
