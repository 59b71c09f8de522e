#include "mmkit/models/clip.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/util/file_util.h"

namespace mmkit {

void ClipConfig::validate() const {
  // Upper bounds far above any real CLIP keep derived sizes free of int64 overflow (see VitConfig).
  auto pos = [](const char* n, int64_t v, int64_t max) {
    MMKIT_CHECK(v > 0, "CLIP config: ", n, " must be positive, got ", v);
    MMKIT_CHECK(v <= max, "CLIP config: ", n, " ", v, " is larger than the supported maximum ", max);
  };
  pos("embed_dim", embed_dim, 1 << 20);
  pos("image_resolution", image_resolution, 16384);
  pos("vision_patch_size", vision_patch_size, 16384);
  pos("vision_width", vision_width, 1 << 20);
  pos("vision_layers", vision_layers, 4096);
  pos("vision_heads", vision_heads, 1 << 20);
  pos("context_length", context_length, 1 << 16);
  pos("vocab_size", vocab_size, 1 << 24);
  pos("transformer_width", transformer_width, 1 << 20);
  pos("transformer_layers", transformer_layers, 4096);
  pos("transformer_heads", transformer_heads, 1 << 20);
  MMKIT_CHECK(eps > 0.f && std::isfinite(eps), "CLIP config: layer_norm_eps must be positive and finite, got ", eps);
  MMKIT_CHECK(image_resolution % vision_patch_size == 0, "CLIP config: image_resolution ",
              image_resolution, " is not a multiple of vision_patch_size ", vision_patch_size);
  MMKIT_CHECK(vision_width % vision_heads == 0, "CLIP config: vision_width ", vision_width,
              " not divisible by vision_heads ", vision_heads);
  MMKIT_CHECK(transformer_width % transformer_heads == 0, "CLIP config: transformer_width ",
              transformer_width, " not divisible by transformer_heads ", transformer_heads);
  nn::activation_from_name(activation);
  MMKIT_CHECK(arch == "clip" || arch == "siglip", "CLIP config: arch must be clip or siglip, got '", arch, "'");
  MMKIT_CHECK(vision_mlp >= 0 && vision_mlp <= (1 << 22) && text_mlp >= 0 && text_mlp <= (1 << 22),
              "CLIP config: MLP sizes must be in 0..", 1 << 22, ", got ", vision_mlp, " and ", text_mlp);
  if (siglip())
    MMKIT_CHECK(embed_dim == vision_width, "SigLIP config: the image embedding is the vision tower's width ",
                vision_width, ", so the text head must project to it too, got ", embed_dim);
}

int64_t ClipConfig::vision_tokens() const {
  const int64_t g = image_resolution / vision_patch_size;
  return g * g + (siglip() ? 0 : 1);
}

std::string ClipConfig::to_json() const {
  nlohmann::json j = {{"embed_dim", embed_dim},
                      {"image_resolution", image_resolution},
                      {"vision_layers", vision_layers},
                      {"vision_width", vision_width},
                      {"vision_patch_size", vision_patch_size},
                      {"vision_heads", vision_heads},
                      {"context_length", context_length},
                      {"vocab_size", vocab_size},
                      {"transformer_width", transformer_width},
                      {"transformer_heads", transformer_heads},
                      {"transformer_layers", transformer_layers},
                      {"activation", activation}};
  if (eps != 1e-5f) j["layer_norm_eps"] = eps;
  if (siglip()) {
    j["arch"] = arch;
    j["vision_mlp"] = vision_mlp_dim();
    j["text_mlp"] = text_mlp_dim();
  }
  return j.dump();
}

ClipConfig ClipConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("CLIP config is not valid JSON: ", e.what());
  }
  MMKIT_CHECK(j.is_object(), "CLIP config must be a JSON object");
  ClipConfig c;
  auto get = [&](const char* k, int64_t& out) {
    MMKIT_CHECK(j.contains(k), "CLIP config: missing field '", k, "'",
                std::string(k).find("heads") != std::string::npos
                    ? " (head counts cannot be inferred from tensor shapes)"
                    : "");
    MMKIT_CHECK(j[k].is_number_integer(), "CLIP config: field '", k, "' must be an integer");
    out = j[k].get<int64_t>();
  };
  get("embed_dim", c.embed_dim);
  get("image_resolution", c.image_resolution);
  get("vision_layers", c.vision_layers);
  get("vision_width", c.vision_width);
  get("vision_patch_size", c.vision_patch_size);
  get("vision_heads", c.vision_heads);
  get("context_length", c.context_length);
  get("vocab_size", c.vocab_size);
  get("transformer_width", c.transformer_width);
  get("transformer_heads", c.transformer_heads);
  get("transformer_layers", c.transformer_layers);
  if (j.contains("activation")) {
    MMKIT_CHECK(j["activation"].is_string(), "CLIP config: 'activation' must be a string");
    c.activation = j["activation"].get<std::string>();
  }
  if (j.contains("arch")) {
    MMKIT_CHECK(j["arch"].is_string(), "CLIP config: 'arch' must be a string");
    c.arch = j["arch"].get<std::string>();
  }
  if (j.contains("vision_mlp")) get("vision_mlp", c.vision_mlp);
  if (j.contains("text_mlp")) get("text_mlp", c.text_mlp);
  if (j.contains("layer_norm_eps")) {
    MMKIT_CHECK(j["layer_norm_eps"].is_number(), "CLIP config: 'layer_norm_eps' must be a number");
    c.eps = j["layer_norm_eps"].get<float>();
  }
  c.validate();
  return c;
}

std::string hf_config_model_type(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("model_type") && j["model_type"].is_string()) return j["model_type"].get<std::string>();
  return "";
}

std::string hf_config_arch(const std::string& text) {
  const std::string t = hf_config_model_type(text);
  return t == "siglip" || t == "siglip2" ? "siglip" : "clip";
}

namespace {
// A Hugging Face CLIPConfig / SiglipConfig: the object and its text_config / vision_config
// sub-objects (absent or null: empty, so every field takes its default).
struct HfTowerConfigs {
  nlohmann::json root, text, vision;
};
HfTowerConfigs parse_hf_tower_configs(const std::string& text, const std::string& path) {
  HfTowerConfigs h;
  try {
    h.root = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(path, " is not valid JSON: ", e.what());
  }
  MMKIT_CHECK(h.root.is_object(), path, " is not a JSON object");
  auto sub = [&](const char* k) {
    if (!h.root.contains(k) || h.root[k].is_null()) return nlohmann::json::object();
    MMKIT_CHECK(h.root[k].is_object(), path, ": '", k, "' must be an object");
    return h.root[k];
  };
  h.text = sub("text_config");
  h.vision = sub("vision_config");
  return h;
}
}  // namespace

// Hugging Face config.json (SiglipConfig) -> ClipConfig. Defaults are transformers'
// SiglipTextConfig / SiglipVisionConfig ones (configuration_siglip.py): width 768, 12 layers and
// heads, MLP 3072, gelu_pytorch_tanh, eps 1e-6, 224 px in 16 px patches, 64 text positions,
// vocabulary 32000; the text head projects to projection_size (default: the text width).
ClipConfig ClipConfig::from_hf_siglip_json(const std::string& text, const std::string& path) {
  const HfTowerConfigs h = parse_hf_tower_configs(text, path);
  const nlohmann::json &tc = h.text, &vc = h.vision;
  auto num = [&](const nlohmann::json& o, const char* k, int64_t d) -> int64_t {
    if (!o.contains(k) || o[k].is_null()) return d;
    MMKIT_CHECK(o[k].is_number_integer(), path, ": field '", k, "' must be an integer");
    return o[k].get<int64_t>();
  };
  auto str = [&](const nlohmann::json& o, const char* k, const char* d) -> std::string {
    if (!o.contains(k)) return d;
    MMKIT_CHECK(o[k].is_string(), path, ": field '", k, "' must be a string");
    return o[k].get<std::string>();
  };
  auto eps = [&](const nlohmann::json& o) -> float {
    if (!o.contains("layer_norm_eps")) return 1e-6f;
    MMKIT_CHECK(o["layer_norm_eps"].is_number(), path, ": field 'layer_norm_eps' must be a number");
    return o["layer_norm_eps"].get<float>();
  };
  MMKIT_CHECK(!vc.contains("vision_use_head") || vc["vision_use_head"] != false, path,
              ": vision_use_head false (no attention-pooling head) is not supported");
  ClipConfig c;
  c.arch = "siglip";
  c.vision_width = num(vc, "hidden_size", 768);
  c.vision_layers = num(vc, "num_hidden_layers", 12);
  c.vision_heads = num(vc, "num_attention_heads", 12);
  c.vision_mlp = num(vc, "intermediate_size", 3072);
  c.image_resolution = num(vc, "image_size", 224);
  c.vision_patch_size = num(vc, "patch_size", 16);
  MMKIT_CHECK(num(vc, "num_channels", 3) == 3, path, ": only 3-channel images are supported");
  c.transformer_width = num(tc, "hidden_size", 768);
  c.transformer_layers = num(tc, "num_hidden_layers", 12);
  c.transformer_heads = num(tc, "num_attention_heads", 12);
  c.text_mlp = num(tc, "intermediate_size", 3072);
  c.context_length = num(tc, "max_position_embeddings", 64);
  c.vocab_size = num(tc, "vocab_size", 32000);
  c.embed_dim = num(tc, "projection_size", c.transformer_width);
  const std::string act = str(vc, "hidden_act", "gelu_pytorch_tanh");
  MMKIT_CHECK(act == str(tc, "hidden_act", "gelu_pytorch_tanh"), path,
              ": different activations in the two towers are not supported");
  c.activation = nn::activation_name(nn::activation_from_name(act));
  c.eps = eps(vc);
  MMKIT_CHECK(c.eps == eps(tc), path, ": different layer_norm_eps in the two towers are not supported");
  MMKIT_CHECK(c.embed_dim == c.vision_width, path, ": the text head projects to ", c.embed_dim,
              " (text_config projection_size, default hidden_size) but image embeddings have the vision width ",
              c.vision_width);
  c.validate();
  return c;
}

// Hugging Face config.json (CLIPConfig) -> ClipConfig. Absent fields take
// transformers' defaults (CLIPTextConfig / CLIPVisionConfig), as it does.
ClipConfig ClipConfig::from_hf_json(const std::string& text, const std::string& path) {
  const HfTowerConfigs h = parse_hf_tower_configs(text, path);
  const nlohmann::json &j = h.root, &tc = h.text, &vc = h.vision;
  auto str = [&](const nlohmann::json& o, const char* k, const char* d) -> std::string {
    if (!o.contains(k)) return d;
    MMKIT_CHECK(o[k].is_string(), path, ": field '", k, "' must be a string");
    return o[k].get<std::string>();
  };
  auto num = [&](const nlohmann::json& o, const char* k, int64_t d) -> int64_t {
    if (!o.contains(k)) return d;
    MMKIT_CHECK(o[k].is_number_integer(), path, ": field '", k, "' must be an integer");
    return o[k].get<int64_t>();
  };
  ClipConfig c;
  c.embed_dim = num(j, "projection_dim", 512);
  c.transformer_width = num(tc, "hidden_size", 512);
  c.transformer_layers = num(tc, "num_hidden_layers", 12);
  c.transformer_heads = num(tc, "num_attention_heads", 8);
  c.context_length = num(tc, "max_position_embeddings", 77);
  c.vocab_size = num(tc, "vocab_size", 49408);
  c.vision_width = num(vc, "hidden_size", 768);
  c.vision_layers = num(vc, "num_hidden_layers", 12);
  c.vision_heads = num(vc, "num_attention_heads", 12);
  c.image_resolution = num(vc, "image_size", 224);
  c.vision_patch_size = num(vc, "patch_size", 32);
  std::string act = str(vc, "hidden_act", "quick_gelu");
  MMKIT_CHECK(act == str(tc, "hidden_act", "quick_gelu"), path,
              ": different activations in the two towers are not supported");
  c.activation = act;
  if (vc.contains("layer_norm_eps")) {
    MMKIT_CHECK(vc["layer_norm_eps"].is_number(), path, ": field 'layer_norm_eps' must be a number");
    c.eps = vc["layer_norm_eps"].get<float>();
  }
  c.validate();
  return c;
}

void Clip::init(const ClipConfig& c, uint64_t seed) {
  c.validate();
  cfg = c;
  Rng rng(seed);
  const int64_t W = c.vision_width, Wt = c.transformer_width, E = c.embed_dim;
  const bool sig = c.siglip();
  conv1.init("visual.conv1", 3, W, c.vision_patch_size, /*bias=*/sig, rng);
  if (!sig) {
    class_embedding.init("visual.class_embedding", Shape{W}, false);
    nn::init_trunc_normal(class_embedding, 0.02f, rng);
  }
  visual_positional.init("visual.positional_embedding", Shape{c.vision_tokens(), W}, false);
  nn::init_trunc_normal(visual_positional, 0.01f, rng);
  if (!sig) ln_pre.init("visual.ln_pre", W, c.eps);
  ln_post.init("visual.ln_post", W, c.eps);
  nn::EncoderLayerConfig vc;
  vc.dim = W;
  vc.heads = c.vision_heads;
  vc.mlp_dim = c.vision_mlp_dim();
  vc.act = nn::activation_from_name(c.activation);
  vc.norm_first = true;
  vc.eps = c.eps;
  visual_blocks.assign(size_t(c.vision_layers), {});
  for (int64_t i = 0; i < c.vision_layers; ++i)
    visual_blocks[size_t(i)].init("visual.transformer.resblocks." + std::to_string(i), vc, rng,
                                  nn::EncoderLayerNames::clip_names());
  if (sig) {
    visual_head.init("visual.head", W, c.vision_heads, c.vision_mlp_dim(), vc.act, c.eps, rng);
  } else {
    visual_proj.init("visual.proj", Shape{W, E}, true);
    nn::init_trunc_normal(visual_proj, 1.f / std::sqrt(float(W)), rng);
  }

  token_embedding.init("token_embedding", c.vocab_size, Wt, 0.02f, rng);
  text_positional.init("positional_embedding", Shape{c.context_length, Wt}, false);
  nn::init_trunc_normal(text_positional, 0.01f, rng);
  nn::EncoderLayerConfig tc = vc;
  tc.dim = Wt;
  tc.heads = c.transformer_heads;
  tc.mlp_dim = c.text_mlp_dim();
  text_blocks.assign(size_t(c.transformer_layers), {});
  for (int64_t i = 0; i < c.transformer_layers; ++i)
    text_blocks[size_t(i)].init("transformer.resblocks." + std::to_string(i), tc, rng,
                                nn::EncoderLayerNames::clip_names());
  ln_final.init("ln_final", Wt, c.eps);
  if (sig) {
    text_head.init("text_head", Wt, E, true, rng);
    // open_clip's SigLIP initialisation: temperature 10, bias -10.
    logit_scale.init("logit_scale", Shape{1}, false);
    if (logit_scale.value.defined()) logit_scale.value.f32()[0] = std::log(10.f);
    logit_bias = Parameter();
    add_logit_bias(-10.f);
    return;
  }
  text_projection.init("text_projection", Shape{Wt, E}, true);
  nn::init_trunc_normal(text_projection, 1.f / std::sqrt(float(Wt)), rng);
  logit_scale.init("logit_scale", Shape{}, false);
  if (logit_scale.value.defined()) logit_scale.value.f32()[0] = std::log(1.f / 0.07f);
}

nn::ParamList Clip::parameters() {
  const bool sig = cfg.siglip();
  nn::ParamList p;
  conv1.collect(p);
  if (!sig) p.push_back(&class_embedding);
  p.push_back(&visual_positional);
  if (!sig) ln_pre.collect(p);
  for (auto& b : visual_blocks) b.collect(p);
  ln_post.collect(p);
  if (sig)
    visual_head.collect(p);
  else
    p.push_back(&visual_proj);
  token_embedding.collect(p);
  p.push_back(&text_positional);
  for (auto& b : text_blocks) b.collect(p);
  ln_final.collect(p);
  if (sig)
    text_head.collect(p);
  else
    p.push_back(&text_projection);
  p.push_back(&logit_scale);
  if (has_logit_bias()) p.push_back(&logit_bias);
  return p;
}

void Clip::add_logit_bias(float value) {
  if (has_logit_bias()) return;
  logit_bias.init("logit_bias", logit_bias_shape(), false);
  if (logit_bias.value.defined()) logit_bias.value.f32()[0] = value;
}

namespace {

std::string dir_of(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

}  // namespace

ClipConfig clip_config_of(const io::SafetensorsFile& file, io::Layout layout, std::string* what) {
  const std::string& path = file.path();
  MMKIT_CHECK(layout == io::Layout::openai_clip || layout == io::Layout::hf_clip || layout == io::Layout::hf_siglip,
              path, " does not look like a CLIP or SigLIP checkpoint (layout: ", io::layout_name(layout), ")");
  if (layout != io::Layout::openai_clip) {
    const io::HfTowers towers = io::hf_towers(file);
    const bool sig = layout == io::Layout::hf_siglip;
    MMKIT_CHECK(towers.vision && towers.text, path, ": holds only the ", towers.vision ? "vision" : "text",
                " tower (", towers.vision ? "vision_model" : "text_model", ".* tensors, as a ",
                sig ? (towers.vision ? "SiglipVisionModel" : "SiglipTextModel") : (towers.vision ? "CLIPVisionModel" : "CLIPTextModel"),
                " saves it); mmkit needs both towers (a ", sig ? "SiglipModel" : "CLIPModel", ")");
  }
  if (what) *what = path;
  auto it = file.metadata().find("config");
  if (layout == io::Layout::openai_clip) {
    MMKIT_CHECK(it != file.metadata().end(), path,
                ": no 'config' in the safetensors metadata (CLIP hyper-parameters, including head "
                "counts, are required)");
    return ClipConfig::from_json(it->second);
  }
  if (it != file.metadata().end()) return ClipConfig::from_json(it->second);
  std::string cj = dir_of(path) + "/config.json";
  std::string text = io::read_text_file(cj);
  const bool sig = layout == io::Layout::hf_siglip;
  MMKIT_CHECK(!text.empty(), path, ": Hugging Face ", sig ? "SigLIP" : "CLIP", " checkpoint without ", cj,
              " (needed for the hyper-parameters; head counts cannot be inferred)");
  // config.json's model_type and the tensors must agree (io::detect_layout reads the tensors).
  const std::string type = hf_config_model_type(text);
  MMKIT_CHECK(type.empty() || type == "clip" || type == "siglip" || type == "siglip2", cj, ": model_type '", type,
              "' is not a two-tower CLIP or SigLIP model (mmkit reads model_type clip, siglip and siglip2)");
  MMKIT_CHECK(type.empty() || sig == (hf_config_arch(text) == "siglip"), cj, ": model_type '", type, "', but ",
              path, " holds ", io::layout_name(layout), " tensors");
  if (what) *what = path + " (with the hyper-parameters of " + cj + ")";
  return sig ? ClipConfig::from_hf_siglip_json(text, cj) : ClipConfig::from_hf_json(text, cj);
}

std::unique_ptr<Clip> load_clip(const std::string& model_path) {
  const std::string path = resolve_model_file(model_path);
  auto file = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
  io::Layout layout = io::detect_layout(*file);
  std::string what;
  const ClipConfig cfg = clip_config_of(*file, layout, &what);
  auto m = std::make_unique<Clip>();
  ShapeOnlyScope shapes_only;  // the checkpoint provides every value
  m->init(cfg, 0);
  // OpenAI names are mmkit's own (identity remap); Hugging Face is renamed.
  io::Remapped r = io::remap(file, layout);
  if (!m->cfg.siglip()) {
    // A CLIP trained with the sigmoid loss carries the optional bias under the same name in both
    // layouts (the Hugging Face CLIP rules leave it unmatched); a scalar like logit_scale. SigLIP's
    // [1] bias is one of its parameters() from init() on.
    auto unused_bias = std::find(r.unused.begin(), r.unused.end(), "logit_bias");
    if (unused_bias != r.unused.end()) {
      r.unused.erase(unused_bias);
      r.tensors["logit_bias"] = io::read_tensor_f32(*file, "logit_bias");
      r.source["logit_bias"] = "logit_bias";
    }
    if (r.tensors.count("logit_bias")) m->add_logit_bias(0.f);
  }
  io::bind_remapped(r, m->parameters(), what);
  m->file = file;
  return m;
}

Var clip_encode_image(Graph& g, Clip& m, Var images) {
  const ClipConfig& c = m.cfg;
  const Shape s = g.shape(images);
  MMKIT_CHECK(s.n == 4 && s[1] == 3 && s[2] == c.image_resolution && s[3] == c.image_resolution,
              "CLIP: expected images [B, 3, ", c.image_resolution, ", ", c.image_resolution,
              "], got ", s.str());
  const int64_t B = s[0], W = c.vision_width;
  Var x = nn::patch_embedding(g, m.conv1, images);                         // [B, P, W]
  if (c.siglip()) {
    // Every token reaches the attention-pooling head, so every block runs on all of them.
    x = ag::add_broadcast(g, x, g.param(m.visual_positional));
    for (auto& blk : m.visual_blocks) x = nn::transformer_encoder_layer(g, blk, x);
    return nn::attention_pool(g, m.visual_head, nn::layer_norm(g, m.ln_post, x));  // [B, W] = [B, E]
  }
  Var cls = ag::broadcast_batch(g, ag::reshape(g, g.param(m.class_embedding), Shape{1, 1, W}), B);
  x = ag::concat(g, {cls, x}, 1);                                           // [B, P+1, W]
  x = ag::add_broadcast(g, x, g.param(m.visual_positional));
  x = nn::layer_norm(g, m.ln_pre, x);
  // Only the class token leaves the last block (see transformer_encoder_layer_at).
  MMKIT_CHECK(!m.visual_blocks.empty(), "CLIP: the image tower has no layers");
  for (size_t i = 0; i + 1 < m.visual_blocks.size(); ++i) x = nn::transformer_encoder_layer(g, m.visual_blocks[i], x);
  x = nn::transformer_encoder_layer_at(g, m.visual_blocks.back(), x, 0);   // [B, 1, W]
  Var pooled = nn::layer_norm(g, m.ln_post, ag::reshape(g, x, Shape{B, W})); // [B, W]
  return ag::matmul(g, pooled, g.param(m.visual_proj));                    // [B, E]
}

Var clip_encode_text(Graph& g, Clip& m, const Tensor& ids) {
  const ClipConfig& c = m.cfg;
  MMKIT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::i32 && ids.dim(1) <= c.context_length,
              "CLIP: token ids must be I32 [B, T<=", c.context_length, "], got ",
              ids.shape().str());
  const int64_t B = ids.dim(0), T = ids.dim(1), Wt = c.transformer_width;
  if (c.siglip()) {
    // No causal mask: every position (padding included, as SigLIP was trained) reaches the pooled
    // last one, so the tower runs on all T.
    Var x = nn::embedding(g, m.token_embedding, ids);                        // [B, T, Wt]
    Var pos = g.param(m.text_positional);
    if (T != c.context_length) {
      Tensor rows = g.alloc(Shape{T}, DType::i32);
      for (int64_t t = 0; t < T; ++t) rows.ptr<int32_t>()[t] = int32_t(t);
      pos = ag::gather_rows(g, pos, rows);
    }
    x = ag::add_broadcast(g, x, pos);
    for (auto& blk : m.text_blocks) x = nn::transformer_encoder_layer(g, blk, x);
    Tensor last = g.alloc(Shape{B}, DType::i32);
    for (int64_t b = 0; b < B; ++b) last.ptr<int32_t>()[b] = int32_t(T - 1);
    Var pooled = nn::layer_norm(g, m.ln_final, ag::select_token(g, x, last)); // [B, Wt]
    return nn::linear(g, m.text_head, pooled);                              // [B, E]
  }
  // Pool at the end-of-text token: the highest id in each row.
  Tensor eot = g.alloc(Shape{B}, DType::i32);
  int64_t Tu = 1;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* row = ids.ptr<int32_t>() + b * T;
    int32_t best = 0;
    for (int64_t t = 1; t < T; ++t)
      if (row[t] > row[best]) best = int32_t(t);
    eot.ptr<int32_t>()[b] = best;
    Tu = std::max(Tu, int64_t(best) + 1);
  }
  // Under the causal mask no position sees a later one, so positions after
  // the batch's last end-of-text token cannot change any pooled output: the
  // tower runs on the first Tu <= T positions only. Exact for the outputs
  // and for every gradient (those positions' gradients are exactly zero);
  // a batch of 20-token captions in CLIP's context of 77 costs 22/77 of the
  // full text tower, forward and backward.
  Tensor used = ids;
  if (Tu < T) {
    used = g.alloc(Shape{B, Tu}, DType::i32);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(used.ptr<int32_t>() + b * Tu, ids.ptr<int32_t>() + b * T, size_t(Tu) * sizeof(int32_t));
  }
  Var x = nn::embedding(g, m.token_embedding, used);                        // [B, Tu, Wt]
  Var pos = g.param(m.text_positional);
  if (Tu != c.context_length) {
    if (g.requires_grad(pos)) {
      // The first Tu rows, with a gradient (scatter-added back into [context, Wt]).
      Tensor rows = g.alloc(Shape{Tu}, DType::i32);
      for (int64_t t = 0; t < Tu; ++t) rows.ptr<int32_t>()[t] = int32_t(t);
      pos = ag::gather_rows(g, pos, rows);
    } else {
      pos = g.constant(Tensor::view(g.value(pos).raw(), Shape{Tu, Wt}, DType::f32));
    }
  }
  x = ag::add_broadcast(g, x, pos);
  nn::AttentionMasks masks;
  masks.causal = true;
  for (auto& blk : m.text_blocks) x = nn::transformer_encoder_layer(g, blk, x, masks);
  // ln_final is per token: applying it to the pooled rows only is the same.
  Var pooled = nn::layer_norm(g, m.ln_final, ag::select_token(g, x, eot));  // [B, Wt]
  return ag::matmul(g, pooled, g.param(m.text_projection));                // [B, E]
}

ClipConfig fmnist_clip_config() {
  ClipConfig c;
  c.embed_dim = 128;
  c.image_resolution = 28;
  c.vision_patch_size = 4;  // 7x7 patches + class token
  c.vision_width = 128;
  c.vision_layers = 4;
  c.vision_heads = 4;
  c.context_length = 32;  // captions are short; position embeddings [32, 128]
  c.vocab_size = 0;       // set from the tokenizer
  c.transformer_width = 128;
  c.transformer_layers = 3;
  c.transformer_heads = 4;
  c.activation = "gelu";
  return c;
}

}  // namespace mmkit
