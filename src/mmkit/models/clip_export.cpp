#include "mmkit/models/clip_export.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"

namespace mmkit {

namespace {

// An encoder block's parts, OpenAI names -> Hugging Face's (CLIP and SigLIP name them alike).
std::string block_renamed(std::string h) {
  static const std::vector<std::pair<std::regex, std::string>> block = {
      {std::regex(R"(\.ln_1\.)"), ".layer_norm1."},
      {std::regex(R"(\.ln_2\.)"), ".layer_norm2."},
      {std::regex(R"(\.mlp\.c_fc\.)"), ".mlp.fc1."},
      {std::regex(R"(\.mlp\.c_proj\.)"), ".mlp.fc2."},
      {std::regex(R"(\.attn\.out_proj\.)"), ".self_attn.out_proj."},
  };
  for (const auto& [bre, bto] : block) h = std::regex_replace(h, bre, bto);
  return h;
}

// mmkit (OpenAI) name -> Hugging Face name; the inverse of io/layouts.cpp's
// hf_clip rules. in_proj tensors are split separately.
std::string hf_name(const std::string& n) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^visual\.conv1\.weight$)"), "vision_model.embeddings.patch_embedding.weight"},
      {std::regex(R"(^visual\.class_embedding$)"), "vision_model.embeddings.class_embedding"},
      {std::regex(R"(^visual\.positional_embedding$)"), "vision_model.embeddings.position_embedding.weight"},
      {std::regex(R"(^visual\.ln_pre\.(weight|bias)$)"), "vision_model.pre_layrnorm.$1"},
      {std::regex(R"(^visual\.ln_post\.(weight|bias)$)"), "vision_model.post_layernorm.$1"},
      {std::regex(R"(^visual\.proj$)"), "visual_projection.weight"},
      {std::regex(R"(^visual\.transformer\.resblocks\.(\d+)\.(.*)$)"), "vision_model.encoder.layers.$1.$2"},
      {std::regex(R"(^token_embedding\.weight$)"), "text_model.embeddings.token_embedding.weight"},
      {std::regex(R"(^positional_embedding$)"), "text_model.embeddings.position_embedding.weight"},
      {std::regex(R"(^ln_final\.(weight|bias)$)"), "text_model.final_layer_norm.$1"},
      {std::regex(R"(^text_projection$)"), "text_projection.weight"},
      {std::regex(R"(^transformer\.resblocks\.(\d+)\.(.*)$)"), "text_model.encoder.layers.$1.$2"},
      {std::regex(R"(^logit_scale$)"), "logit_scale"},
      {std::regex(R"(^logit_bias$)"), "logit_bias"},  // sigmoid-loss models only
  };
  for (const auto& [re, to] : rules)
    if (std::regex_match(n, re)) return block_renamed(std::regex_replace(n, re, to));
  fail("no Hugging Face name for CLIP tensor '", n, "'");
}

// mmkit's SigLIP name -> transformers SiglipModel's; the inverse of io/layouts.cpp's hf_siglip
// rules. The pooling head's attention is an nn.MultiheadAttention there too (in_proj kept packed);
// the encoder blocks' in_proj tensors are split separately.
std::string hf_siglip_name(const std::string& n) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^visual\.conv1\.(weight|bias)$)"), "vision_model.embeddings.patch_embedding.$1"},
      {std::regex(R"(^visual\.positional_embedding$)"), "vision_model.embeddings.position_embedding.weight"},
      {std::regex(R"(^visual\.ln_post\.(weight|bias)$)"), "vision_model.post_layernorm.$1"},
      {std::regex(R"(^visual\.head\.probe$)"), "vision_model.head.probe"},
      {std::regex(R"(^visual\.head\.attn\.(in_proj_weight|in_proj_bias)$)"), "vision_model.head.attention.$1"},
      {std::regex(R"(^visual\.head\.attn\.out_proj\.(weight|bias)$)"), "vision_model.head.attention.out_proj.$1"},
      {std::regex(R"(^visual\.head\.ln\.(weight|bias)$)"), "vision_model.head.layernorm.$1"},
      {std::regex(R"(^visual\.head\.mlp\.c_fc\.(weight|bias)$)"), "vision_model.head.mlp.fc1.$1"},
      {std::regex(R"(^visual\.head\.mlp\.c_proj\.(weight|bias)$)"), "vision_model.head.mlp.fc2.$1"},
      {std::regex(R"(^visual\.transformer\.resblocks\.(\d+)\.(.*)$)"), "vision_model.encoder.layers.$1.$2"},
      {std::regex(R"(^token_embedding\.weight$)"), "text_model.embeddings.token_embedding.weight"},
      {std::regex(R"(^positional_embedding$)"), "text_model.embeddings.position_embedding.weight"},
      {std::regex(R"(^ln_final\.(weight|bias)$)"), "text_model.final_layer_norm.$1"},
      {std::regex(R"(^text_head\.(weight|bias)$)"), "text_model.head.$1"},
      {std::regex(R"(^transformer\.resblocks\.(\d+)\.(.*)$)"), "text_model.encoder.layers.$1.$2"},
      {std::regex(R"(^logit_(scale|bias)$)"), "logit_$1"},
  };
  for (const auto& [re, to] : rules)
    if (std::regex_match(n, re)) {
      std::string h = std::regex_replace(n, re, to);
      if (h.find(".encoder.layers.") != std::string::npos) h = block_renamed(h);
      return h;
    }
  fail("no Hugging Face name for SigLIP tensor '", n, "'");
}

Tensor transposed(const Tensor& t) {
  const int64_t r = t.shape()[0], c = t.shape()[1];
  Tensor o = Tensor::empty(Shape{c, r});
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) o.f32()[j * r + i] = t.f32()[i * c + j];
  return o;
}

}  // namespace

std::string hf_clip_config_json(const ClipConfig& c) {
  nlohmann::json j;
  j["architectures"] = {"CLIPModel"};
  j["model_type"] = "clip";
  j["projection_dim"] = c.embed_dim;
  j["logit_scale_init_value"] = 2.6592;
  j["text_config"] = {{"hidden_size", c.transformer_width},
                      {"intermediate_size", 4 * c.transformer_width},
                      {"num_attention_heads", c.transformer_heads},
                      {"num_hidden_layers", c.transformer_layers},
                      {"max_position_embeddings", c.context_length},
                      {"vocab_size", c.vocab_size},
                      {"hidden_act", c.activation},
                      {"layer_norm_eps", c.eps},
                      {"projection_dim", c.embed_dim}};
  j["vision_config"] = {{"hidden_size", c.vision_width},
                        {"intermediate_size", 4 * c.vision_width},
                        {"num_attention_heads", c.vision_heads},
                        {"num_hidden_layers", c.vision_layers},
                        {"image_size", c.image_resolution},
                        {"patch_size", c.vision_patch_size},
                        {"num_channels", 3},
                        {"hidden_act", c.activation},
                        {"layer_norm_eps", c.eps},
                        {"projection_dim", c.embed_dim}};
  return j.dump(2);
}

// SiglipConfig (configuration_siglip.py): the towers' sizes; the text head's output size is
// text_config.projection_size (the vision width: image embeddings are the pooled vision tokens).
std::string hf_siglip_config_json(const ClipConfig& c) {
  const std::string act = c.activation == "gelu_tanh" ? "gelu_pytorch_tanh" : c.activation;
  nlohmann::json j;
  j["architectures"] = {"SiglipModel"};
  j["model_type"] = "siglip";
  j["text_config"] = {{"hidden_size", c.transformer_width},
                      {"intermediate_size", c.text_mlp_dim()},
                      {"num_attention_heads", c.transformer_heads},
                      {"num_hidden_layers", c.transformer_layers},
                      {"max_position_embeddings", c.context_length},
                      {"vocab_size", c.vocab_size},
                      {"hidden_act", act},
                      {"layer_norm_eps", c.eps},
                      {"projection_size", c.embed_dim},
                      {"model_type", "siglip_text_model"}};
  j["vision_config"] = {{"hidden_size", c.vision_width},
                        {"intermediate_size", c.vision_mlp_dim()},
                        {"num_attention_heads", c.vision_heads},
                        {"num_hidden_layers", c.vision_layers},
                        {"image_size", c.image_resolution},
                        {"patch_size", c.vision_patch_size},
                        {"num_channels", 3},
                        {"hidden_act", act},
                        {"layer_norm_eps", c.eps},
                        {"model_type", "siglip_vision_model"}};
  j["torch_dtype"] = "float32";
  return j.dump(2);
}

void save_clip_model(const std::string& path, Clip& m, std::map<std::string, std::string> metadata,
                     const std::string& layout) {
  metadata["config"] = m.cfg.to_json();
  nn::ParamList params = m.parameters();  // with the logit bias when the model has one
  if (layout == "openai_clip" || layout == "mmkit") {
    metadata["format"] = "mmkit.clip.v1";
    io::save_parameters(path, params, metadata);
    return;
  }
  MMKIT_CHECK(layout == "hf_clip" || layout == "hf_siglip", "unknown CLIP export layout '", layout,
              "' (openai_clip, hf_clip or hf_siglip)");
  const bool sig = layout == "hf_siglip";
  MMKIT_CHECK(sig == m.cfg.siglip(), "cannot save a ", m.cfg.siglip() ? "SigLIP" : "CLIP", " model in the ", layout,
              " layout");
  auto name_of = [&](const std::string& n) { return sig ? hf_siglip_name(n) : hf_name(n); };
  std::vector<io::NamedTensor> out;
  for (Parameter* p : params) {
    const std::string& n = p->name;
    size_t ip = n.find(".attn.in_proj_");
    if (ip != std::string::npos && n.find(".resblocks.") != std::string::npos) {
      // An encoder block's [3D, D] / [3D] packed q, k, v -> three tensors (SigLIP's pooling head
      // keeps its nn.MultiheadAttention in_proj packed, as transformers does).
      const std::string base = name_of(n.substr(0, ip) + ".attn.out_proj.weight");
      const std::string pre = base.substr(0, base.find(".self_attn.") + 11);
      const bool w = n.compare(n.size() - 6, 6, "weight") == 0;
      const int64_t D = p->value.shape()[0] / 3, cols = w ? p->value.shape()[1] : 1;
      const char* qkv[3] = {"q_proj", "k_proj", "v_proj"};
      for (int k = 0; k < 3; ++k) {
        Tensor t = Tensor::empty(w ? Shape{D, cols} : Shape{D});
        std::memcpy(t.raw(), p->value.f32() + k * D * cols, size_t(D * cols) * 4);
        out.push_back({pre + qkv[k] + (w ? ".weight" : ".bias"), t});
      }
      continue;
    }
    Tensor v = p->value;
    if (n == "visual.proj" || n == "text_projection") v = transposed(v);  // nn.Linear stores [out, in]
    out.push_back({name_of(n), v});
  }
  metadata["format"] = sig ? "mmkit.siglip.hf.v1" : "mmkit.clip.hf.v1";
  std::vector<io::TensorToWrite> w;
  for (const auto& t : out) w.push_back({t.name, DType::f32, t.tensor.shape().vec(), t.tensor.raw()});
  io::write_safetensors(path, w, metadata);
  // config.json beside the weights, written atomically too.
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
  std::string cfg = dir + "/config.json", tmp = cfg + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << (sig ? hf_siglip_config_json(m.cfg) : hf_clip_config_json(m.cfg)) << "\n";
    f.flush();
    MMKIT_CHECK(f, "cannot write ", tmp);
  }
  MMKIT_CHECK(std::rename(tmp.c_str(), cfg.c_str()) == 0, "cannot write ", cfg);
}

}  // namespace mmkit
