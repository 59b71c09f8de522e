// CLIP (Radford et al. 2021): a vision tower and a text tower projected into
// one embedding space, with a learnable temperature.
//
//   auto clip = mmkit::load_clip("clip.safetensors");        // mmapped, no copy for F32
//   Var img = mmkit::clip_encode_image(g, *clip, g.constant(pixels));   // [B, E]
//   Var txt = mmkit::clip_encode_text(g, *clip, ids);                    // ids I32 [B, T]
//
// Tensor names follow OpenAI CLIP / OpenCLIP (`visual.*`, `transformer.*`):
//   vision: visual.conv1.weight [W,3,p,p] (no bias), visual.class_embedding [W],
//     visual.positional_embedding [P+1, W], visual.ln_pre, visual.transformer.resblocks.N.
//     {ln_1, attn.in_proj_weight/in_proj_bias/out_proj, ln_2, mlp.c_fc, mlp.c_proj},
//     visual.ln_post, visual.proj [W, E]
//   text: token_embedding.weight [V, Wt], positional_embedding [ctx, Wt],
//     transformer.resblocks.N.*, ln_final, text_projection [Wt, E]
//   logit_scale [] (log of the temperature's inverse)
//
// SigLIP (Zhai et al. 2023; cfg.arch == "siglip", Hugging Face SiglipModel files) is the same two
// towers with these differences (transformers models/siglip/modeling_siglip.py):
//   vision: visual.conv1 has a bias, no class token and no ln_pre (visual.positional_embedding
//     [P, W]); after visual.ln_post on every token, the attention-pooling head visual.head.*
//     (nn/attention_pool.h) gives the embedding, so E = W and there is no visual.proj;
//   text: no causal mask; pooled at the last position (texts are padded to context_length with
//     the end-of-text id), ln_final, then text_head (an nn.Linear [E, Wt] + [E]);
//   MLP hidden sizes from the config (vision_mlp / text_mlp), GELU in its tanh form, eps 1e-6;
//   logit_scale [1], logit_bias [1]: logits = exp(scale) cos + bias, probabilities are sigmoids.
//   logit_bias [] (optional in CLIP: models trained with SigLIP's sigmoid loss, the name
//     open_clip and Hugging Face SigLIP use)
// Shape letters: B batch, P patches, W vision width, Wt text width, E embed dim, T tokens.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mmkit/io/layouts.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/nn/attention_pool.h"
#include "mmkit/nn/embedding.h"
#include "mmkit/nn/patch_embedding.h"
#include "mmkit/nn/transformer_encoder_layer.h"

namespace mmkit {

struct ClipConfig {
  int64_t embed_dim = 512;
  int64_t image_resolution = 224, vision_patch_size = 32, vision_width = 768, vision_layers = 12,
          vision_heads = 12;
  int64_t context_length = 77, vocab_size = 49408, transformer_width = 512,
          transformer_layers = 12, transformer_heads = 8;
  std::string activation = "quick_gelu";  // OpenAI; many OpenCLIP models use "gelu"; SigLIP "gelu_tanh"
  float eps = 1e-5f;
  std::string arch = "clip";              // "clip" | "siglip" (see the top of this file)
  int64_t vision_mlp = 0, text_mlp = 0;   // MLP hidden sizes; 0 = 4 x width (CLIP)

  bool siglip() const { return arch == "siglip"; }
  int64_t vision_mlp_dim() const { return vision_mlp > 0 ? vision_mlp : 4 * vision_width; }
  int64_t text_mlp_dim() const { return text_mlp > 0 ? text_mlp : 4 * transformer_width; }
  // Patch tokens per image, plus the class token for CLIP.
  int64_t vision_tokens() const;

  void validate() const;
  std::string to_json() const;
  // OpenAI/OpenCLIP-style keys (embed_dim, image_resolution, vision_layers,
  // vision_width, vision_patch_size, vision_heads, context_length, vocab_size,
  // transformer_width, transformer_heads, transformer_layers[, activation]).
  // Head counts must be present: they cannot be inferred from tensor shapes.
  static ClipConfig from_json(const std::string& json);
  // Hugging Face CLIPConfig (config.json with text_config / vision_config); absent fields take
  // transformers' defaults. `where` names the file in messages. Validated.
  static ClipConfig from_hf_json(const std::string& json, const std::string& where);
  // Hugging Face SiglipConfig (model_type "siglip"); absent fields take transformers' SigLIP
  // defaults (base-patch16-224). Validated; `where` names the file in messages.
  static ClipConfig from_hf_siglip_json(const std::string& json, const std::string& where);
};

// "siglip" when a Hugging Face config.json says model_type "siglip" (or "siglip2"), else "clip".
std::string hf_config_arch(const std::string& json);
// config.json's model_type ("" when absent or not a string, or the text is not a JSON object).
std::string hf_config_model_type(const std::string& json);

struct Clip {
  ClipConfig cfg;
  // vision tower
  nn::PatchEmbedding conv1;
  Parameter class_embedding;       // [W]
  Parameter visual_positional;     // [P+1, W]
  nn::LayerNorm ln_pre, ln_post;
  std::vector<nn::TransformerEncoderLayer> visual_blocks;
  Parameter visual_proj;           // [W, E]
  // text tower
  nn::Embedding token_embedding;   // [V, Wt]
  Parameter text_positional;       // [ctx, Wt]
  std::vector<nn::TransformerEncoderLayer> text_blocks;
  nn::LayerNorm ln_final;
  Parameter text_projection;       // [Wt, E]
  Parameter logit_scale;           // [] ([1] for SigLIP)
  // SigLIP only (CLIP leaves them empty and SigLIP leaves class_embedding, ln_pre, visual_proj and
  // text_projection empty; parameters() lists what the architecture has)
  nn::AttentionPool visual_head;   // visual.head.*: probe [1, 1, W], attn, ln, mlp
  nn::Linear text_head;            // text_head.weight [E, Wt], text_head.bias [E]
  // logits = exp(scale) cos + bias, probabilities per-label sigmoids. Its shape is the one of the
  // architecture's logit_scale, as each layout stores it: SigLIP's [1] (init() makes it; every
  // SigLIP has one), a CLIP's [] (optional: only a CLIP trained with the sigmoid loss has it —
  // add_logit_bias, or load_clip when the file holds it). parameters() lists it when present, so a
  // contrastive CLIP and its files stay as they were.
  Parameter logit_bias;
  bool has_logit_bias() const { return !logit_bias.name.empty(); }
  Shape logit_bias_shape() const { return cfg.siglip() ? Shape{1} : Shape{}; }
  // Gives the model a logit bias of `value` if it has none (a CLIP about to be trained with the
  // sigmoid loss); a model that has one keeps it.
  void add_logit_bias(float value);

  void init(const ClipConfig& cfg, uint64_t seed);  // random weights (training, tests)
  nn::ParamList parameters();
  std::shared_ptr<io::SafetensorsFile> file;  // keeps mapped weights alive
};

// Reads config from the file's metadata ("config"), binds weights (F32 as
// views, F16/BF16 converted). Unknown, missing or mis-shaped tensors are
// reported by name.
std::unique_ptr<Clip> load_clip(const std::string& path);  // a file, a run folder or a Hugging Face folder
// The hyper-parameters of a CLIP/SigLIP checkpoint in `layout` (io::detect_layout): the metadata
// "config", else (Hugging Face) the config.json beside it, checked against the tensors' architecture
// and towers. `what` (optional) gets how messages should name the file.
ClipConfig clip_config_of(const io::SafetensorsFile& file, io::Layout layout, std::string* what = nullptr);

// images [B, 3, R, R] (preprocessed) -> [B, E], not normalised
Var clip_encode_image(Graph& g, Clip& m, Var images);
// ids I32 [B, T] (T <= context_length; pooled at argmax(id) = end of text; SigLIP: at T - 1) -> [B, E]
Var clip_encode_text(Graph& g, Clip& m, const Tensor& ids);

// A small CLIP for 28x28 Fashion-MNIST (`mmkit train clip`'s default: towers of
// 4 and 3 layers of width 128, context 32; vocab_size set from the tokenizer).
ClipConfig fmnist_clip_config();

}  // namespace mmkit
