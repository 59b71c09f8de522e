// Image captioner: a ViT image encoder whose output tokens are the memory of
// a Transformer decoder with causal self-attention and cross-attention
// (Vaswani et al. 2017's encoder-decoder; "Show, Attend and Tell" style
// attention over image regions, Xu et al. 2015).
//
//   mmkit::Captioner m;
//   m.init(cfg, /*seed=*/0);
//   Var mem = mmkit::captioner_encode(g, m, g.constant(images));     // [B, M, D]
//   Var logits = mmkit::caption_decoder_forward(g, m.decoder, ids, mem);  // ids I32 [B, T]
//
// Fast generation (KV cache, greedy, beam search) reads the same weights:
// infer/caption_generate.h. Checkpoint names (PyTorch module paths of
// tools/fixtures/gen_decoder_fixture.py):
//   vision.<ViT names>  (models/vit.h; no head)   memory_proj.{weight,bias} (only if widths differ)
//   decoder.tok_embed.weight [V, D]   decoder.pos_embed.weight [L, D]
//   decoder.layers.{i}.<nn.TransformerDecoderLayer names> (nn/transformer_decoder_layer.h)
//   decoder.norm.{weight,bias} [D] (pre-norm only)
//   lm_head.weight [V, D] (absent when tied to decoder.tok_embed.weight)   lm_head.bias [V]
// Shape letters: B batch, T tokens, L max length, M memory tokens (P+1), D width, V vocabulary.
#pragma once
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/models/vit.h"
#include "mmkit/text/caption_vocab.h"
#include "mmkit/nn/embedding.h"
#include "mmkit/nn/transformer_decoder_layer.h"

namespace mmkit {

struct CaptionDecoderConfig {
  int64_t vocab_size = 0;
  int64_t dim = 128, depth = 2, heads = 4, mlp_dim = 512;
  int64_t max_len = 64;         // positions, BOS included
  bool norm_first = false;      // post-norm is nn.TransformerDecoderLayer's default
  bool tie_embeddings = true;   // lm_head.weight = decoder.tok_embed.weight
  std::string activation = "gelu";
  float dropout = 0.f;
  float eps = 1e-5f;
  int32_t pad_id = 0, bos_id = 1, eos_id = 2;

  void validate() const;
};

struct CaptionerConfig {
  VitConfig vision;  // num_classes 0
  CaptionDecoderConfig decoder;

  void validate() const;
  std::string to_json() const;  // {"model": "captioner", "vision": {...}, "decoder": {...}}
  static CaptionerConfig from_json(const std::string& json, const std::string& where);
};

struct CaptionDecoder {
  CaptionDecoderConfig cfg;
  nn::Embedding tok_embed;                       // [V, D], N(0, 0.02)
  nn::Embedding pos_embed;                       // [L, D], N(0, 0.02)
  std::vector<nn::TransformerDecoderLayer> layers;
  nn::LayerNorm norm;                            // pre-norm only
  Parameter lm_head_weight;                      // [V, D], untied only
  Parameter lm_head_bias;                        // [V]

  void init(const CaptionDecoderConfig& cfg, Rng& rng);
  void collect(nn::ParamList& out);
  // The LM head's weight: the token table when tied.
  Parameter& head_weight() { return cfg.tie_embeddings ? tok_embed.weight : lm_head_weight; }
};

struct Captioner {
  CaptionerConfig cfg;
  Vit vision;              // parameters renamed "vision.*"
  nn::Linear memory_proj;  // [D, Dv], only when vision.dim != decoder.dim
  CaptionDecoder decoder;

  void init(const CaptionerConfig& cfg, uint64_t seed);
  nn::ParamList parameters();
  bool has_memory_proj() const { return cfg.vision.dim != cfg.decoder.dim; }
};

// images [B, C, H, W] -> memory [B, M, D]: every ViT output token (class
// token first; the final LayerNorm of a pre-norm ViT applied to each), then
// memory_proj if the widths differ.
Var captioner_encode(Graph& g, Captioner& m, Var images);

struct CaptionDecodeOptions {
  const Tensor* key_padding = nullptr;  // U8 [B, T], nonzero = PAD token
  Tensor* cross_probs_out = nullptr;    // last layer's cross-attention [B, H, T, M]
};
// ids I32 [B, T] (T <= max_len), memory [B, M, D] -> logits [B, T, V]
Var caption_decoder_forward(Graph& g, CaptionDecoder& d, const Tensor& ids, Var memory,
                            const CaptionDecodeOptions& opt = {});

// A trained captioner with its word vocabulary, as the trainer saves it.
struct CaptionModel {
  Captioner model;
  text::CaptionVocab vocab;
};
// DIR/model.safetensors or a .safetensors path written by the trainer.
CaptionModel load_captioner(const std::string& path);

// Decoded images of any size/channels -> the model's normalised input
// [n, C, S, S] (fit_image, then the model's mean/std).
Tensor caption_input(const Captioner& m, const std::vector<Image>& images);

}  // namespace mmkit
