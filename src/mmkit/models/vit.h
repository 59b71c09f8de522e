// Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16
// Words"): conv patch embedding, class token, learned positional embedding,
// a stack of transformer encoder layers, classification head on the class
// token's output.
//
//   mmkit::Vit vit;
//   vit.init(cfg, /*seed=*/0);
//   mmkit::Arena arena;  mmkit::Graph g(arena);
//   Var logits = mmkit::vit_forward(g, vit, g.constant(images));  // [B, classes]
//
// Checkpoint names follow the PyTorch module tree used by
// tools/fixtures/gen_fixtures.py (nn.TransformerEncoder inside):
//   patch_embed.{weight [D,C,p,p], bias [D]}, cls_token [1,1,D],
//   pos_embed [1, P+1, D], encoder.layers.{i}.<TransformerEncoderLayer>,
//   norm.{weight,bias} (pre-norm variant only), head.{weight [K,D], bias [K]}
// Shape letters: B batch, C channels, P patches, D width, K classes.
#pragma once
#include <string>
#include <vector>

#include "mmkit/nn/layer_norm.h"
#include "mmkit/nn/linear.h"
#include "mmkit/nn/patch_embedding.h"
#include "mmkit/nn/transformer_encoder_layer.h"

namespace mmkit {

struct VitConfig {
  int64_t image_size = 28, patch_size = 4, channels = 1;
  int64_t dim = 64, depth = 4, heads = 4, mlp_dim = 256;
  int64_t num_classes = 10;  // 0: no head (an image encoder, see vit_encode)
  bool norm_first = false;  // post-norm is PyTorch's TransformerEncoderLayer default
  std::string activation = "gelu";
  float dropout = 0.f;
  float eps = 1e-5f;
  std::vector<std::string> class_names;  // optional, for labelling predictions
  // Input normalisation (x/255 - mean) / std per channel; empty = 0.5/0.5.
  std::vector<float> pixel_mean, pixel_std;
  // Image pipeline for files: "" = plain resize to image_size (the project's
  // own models), or a preset of image/preprocess.h ("imagenet", "clip").
  std::string preprocess;

  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  void validate() const;  // throws mmkit::Error naming the bad field
  std::string to_json() const;
  static VitConfig from_json(const std::string& json);  // strict about types, lenient about extras
  // Hugging Face ViTConfig (config.json of ViTForImageClassification); absent fields take
  // transformers' defaults. heads > 0 overrides num_attention_heads. `where` names the file in
  // messages. Validated.
  static VitConfig from_hf_json(const std::string& json, const std::string& where, int64_t heads = 0);
};

struct Vit {
  VitConfig cfg;
  nn::PatchEmbedding patch_embed;
  Parameter cls_token;  // [1, 1, D]
  Parameter pos_embed;  // [1, P+1, D]
  std::vector<nn::TransformerEncoderLayer> layers;
  nn::LayerNorm norm;   // final norm, pre-norm variant only
  nn::Linear head;      // [K, D], absent when num_classes == 0

  void init(const VitConfig& cfg, uint64_t seed);
  nn::ParamList parameters();
};

// images [B, C, H, W] -> logits [B, K] (needs num_classes > 0)
Var vit_forward(Graph& g, Vit& m, Var images);
// images [B, C, H, W] -> the encoder's output tokens [B, P+1, D] (class token
// first), before the final `norm` of the pre-norm variant: the image encoder
// of the captioner (models/captioner.h), which normalises every token.
Var vit_encode(Graph& g, Vit& m, Var images);

// Loads DIR/model.safetensors (or a .safetensors path) into a ready model:
// mmkit's own files, torchvision VisionTransformer (vit_b_16 names; the head
// count comes from the file's metadata {"num_heads": N} or `heads`), or
// Hugging Face ViTForImageClassification (config.json beside the file).
Vit load_vit(const std::string& model_path, int64_t heads = 0);

}  // namespace mmkit
