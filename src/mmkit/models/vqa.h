// Visual question answering: ViT-style image encoder, transformer question
// encoder, co-attention fusion (nn/multimodal_fusion.h), classifier over an
// answer vocabulary.
//
//   mmkit::Vqa m;
//   m.init(cfg, /*seed=*/0);                 // cfg.vocab / cfg.answers from the training data
//   mmkit::VqaBatch b = mmkit::make_vqa_batch(m, images, {0, 0, 1}, {"What ...?", ...});
//   Var logits = mmkit::vqa_forward(g, m, b);  // [Bq, K]
//
// Image encoder: images [Bi, C+2, S, S] (RGB + CoordConv x/y channels) -> optional conv stem (kernel = stride =
// stem_patch, GELU) -> patch embedding (kernel = stride = patch_size /
// stem_patch) -> + 2D positional embedding (row_embed[r] + col_embed[c]) ->
// image_layers transformer layers -> tokens [Bi, P, D], P = (S/patch_size)^2.
// Each image is encoded once; image_index [Bq] hands its tokens to every
// question about it (ag::gather_rows).
// Question encoder: <cls> + word ids [Bq, T] -> embed + pos_embed[0..T) ->
// text_layers transformer layers with key padding -> [Bq, T, D].
// With cfg.film the question is encoded first and modulates the stem (see VqaConfig::film), so
// the image encoder after the stem runs per question ([Bq, P, D]).
// Fusion: MultimodalFusion over (text, image), residual branches zero-initialised.
// Pooled: t = max over the text stream's unpadded tokens, v = max (or mean, cfg.image_pool)
// of the image stream; [t, v, t*v] concatenated [Bq, 3D] -> head.fc1 (3D -> 2D), GELU,
// head.fc2 (2D -> K). With cfg.relation_dim > 0 a relation network over the fused image tokens,
// conditioned on t, adds r [Bq, D]: [t, v, t*v, r] [Bq, 4D] -> head.fc1 (4D -> 2D). Its
// tokens are the fused image tokens with their cell coordinates appended (cfg.relation_coords).
// With cfg.hop_heads > 0 two-hop spatial attention over the stem cells (nn/hop_attention.h)
// adds one more D block. (Why max, the product and zero-init: docs/RESULTS.md.)
//
// Checkpoint names: image.stem.{weight,bias}, image.patch_embed.*,
// image.row_embed [G, D], image.col_embed [G, D], image.layers.{i}.*,
// text.embed [V, D], text.pos_embed [L, D], text.layers.{i}.*, fusion.*,
// head.fc1.*, head.fc2.*, relation.* (nn/relation_network.h), hop.* (nn/hop_attention.h). The config JSON (metadata "config") carries the
// question vocabulary and the answer list, so a model file is self-contained.
// Shape letters: Bi images, Bq questions, T words, P patches, G grid side, D width, K answers.
#pragma once
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/nn/embedding.h"
#include "mmkit/nn/hop_attention.h"
#include "mmkit/nn/multimodal_fusion.h"
#include "mmkit/nn/patch_embedding.h"
#include "mmkit/nn/relation_network.h"
#include "mmkit/nn/transformer_encoder_layer.h"
#include "mmkit/text/word_tokenizer.h"

namespace mmkit {

struct VqaConfig {
  int64_t image_size = 75, channels = 3, patch_size = 15;
  int64_t stem_patch = 5, stem_dim = 32;  // stem_patch 0: no stem (one linear patch embedding)
  int64_t dim = 64, heads = 4, mlp_dim = 128;
  int64_t image_layers = 1, text_layers = 1, fusion_layers = 2;
  int64_t max_question_len = 32;  // tokens including <cls>
  // CoordConv (Liu et al. 2018): two extra input channels holding each pixel's x and y in
  // [-1, 1], so the first layer can form "colour AND position" features directly (additive
  // position embeddings alone left training on a long plateau; docs/RESULTS.md).
  bool coord_channels = true;
  // FiLM (Perez et al. 2018): the pooled question (max over the text encoder's tokens) sets a
  // per-channel scale and shift of the conv stem's output, before its GELU, for each question:
  //   h = GELU(s * (1 + gamma(q)) + beta(q)),  s = stem(image) [P1, stem_dim].
  // The image encoder then runs per question (its features already select the asked-about
  // colour), which gives the colour-word <-> object binding a first-order gradient signal
  // (docs/RESULTS.md). Needs stem_patch > 0. Stored as "film"; absent in older files = false.
  bool film = true;
  // Pooling of the fused image stream for the head: "max" (as FiLM's classifier: "is there an
  // object with this feature anywhere"), "mean", or "flatten": the P tokens in grid order,
  // concatenated [P*D] -> head.image_flat (Linear P*D -> D), so the head reads *where* a
  // feature is with position-specific weights (the paper's CNN+MLP readout). Absent in older
  // files = "mean".
  std::string image_pool = "max";
  // Relation network (nn/relation_network.h) over the fused image tokens, conditioned on the
  // pooled question; its output [Bq, D] joins the head's input ([t, v, t*v, r], 4D). The
  // co-attention stack alone stalled at ~69% on Sort-of-CLEVR's relational questions; the paper's
  // RN reached 94% (docs/RESULTS.md). relation_dim = width H of g (0: no relation network),
  // relation_layers = layers of g. Absent in older files = 0.
  int64_t relation_dim = 0, relation_layers = 3;
  int64_t relation_heads = 0;  // attention pooling over the pairs (RelationConfig::attention_heads;
                               // 0: mean only)
  int64_t relation_geometry = 0;  // RelationConfig::geometry (learned pairwise squared differences)
  // (relation_heads, relation_coords and relation_geometry did not speed up the relational
  // questions in the measured runs, so they are off by default; docs/RESULTS.md. Absent in a
  // file = off.)
  // Each token's grid cell centre (x, y) in [-1, 1] appended to its features for the relation
  // network, as the paper tags its objects with coordinates: distances are then a function g
  // can form directly.
  bool relation_coords = false;
  // Two-hop spatial attention (nn/hop_attention.h) over the FiLM-conditioned stem cells
  // (image_size / stem_patch per side), conditioned on the pooled question; its output [Bq, D]
  // joins the head's input. hop_heads = H (0: off), hop_channels = width of its local features.
  // For closest / furthest questions (docs/RESULTS.md). Needs film. Absent in a file = off.
  int64_t hop_heads = 0, hop_channels = 32;
  // Which stem cells the hop attention reads: "film" (the question-conditioned ones, so its
  // convolutions run per question) or "image" (the image's own, so its local features run once
  // per image and only the two attention hops run per question: ~20x less work per step on
  // Sort-of-CLEVR's 20 questions per image). hop_count = K > 0 adds the count readout
  // (HopConfig::count); hop_exclude = k > 0 makes hop 2 skip the cells hop 1 found
  // (HopConfig::exclude). Absent in a file = "film", 0, 0.
  std::string hop_cells = "film";
  int64_t hop_count = 0;
  float hop_exclude = 0.f;
  // Hop 1's query ("find X") from an attention over the question's word embeddings (no context,
  // no position: hop.find_words scores each word, a softmax over the unpadded words weights
  // them) instead of the pooled question t. The colour word then gives the same query in
  // "what shape is X" and "what is closest to X", so finding X, learned early on the
  // non-relational questions, carries over to the relational ones (docs/RESULTS.md). Absent in a
  // file = false.
  bool hop_find_words = false;
  // HopConfig::beta_scale and relate_scale (absent in a file: 32 and 1, the values before they
  // were settings).
  float hop_beta_scale = 32.f, hop_relate_scale = 1.f;
  // HopConfig::dist_pool: distance pooling over the count cells (needs hop_count > 0). Absent in
  // a file = false.
  bool hop_dist_pool = false;
  bool norm_first = false;        // pre-norm everywhere (image, text, fusion) when true; post-norm
                                  // trained better in a shortened run (docs/RESULTS.md)
  bool fusion_zero_init = true;   // FusionConfig::zero_init_residual (init only; not stored)
  float dropout = 0.f;
  float eps = 1e-5f;
  std::vector<std::string> vocab;    // question words; [0] <pad>, [1] <cls>
  std::vector<std::string> answers;  // answer vocabulary, index = class

  int64_t grid() const { return image_size / patch_size; }
  int64_t input_channels() const { return channels + (coord_channels ? 2 : 0); }
  int64_t num_patches() const { return grid() * grid(); }
  void validate() const;  // throws mmkit::Error naming the bad field
  std::string to_json() const;
  static VqaConfig from_json(const std::string& json);
};

struct Vqa {
  VqaConfig cfg;
  text::WordTokenizer tokenizer;
  nn::PatchEmbedding stem, patch_embed;
  Parameter row_embed, col_embed;  // [G, D]
  std::vector<nn::TransformerEncoderLayer> image_layers, text_layers;
  nn::Embedding word_embed;        // text.embed [V, D]
  Parameter text_pos_embed;        // [L, D]
  nn::MultimodalFusion fusion;
  nn::Linear head_fc1, head_fc2;
  nn::Linear image_flat;             // head.image_flat [D, P*D] (image_pool "flatten" only)
  nn::Linear film_gamma, film_beta;  // image.film_{gamma,beta}: [stem_dim, D] (cfg.film only)
  nn::RelationNetwork relation;      // relation.* (cfg.relation_dim > 0 only)
  nn::HopAttention hop;              // hop.* (cfg.hop_heads > 0 only)
  nn::Linear hop_find_words;         // hop.find_words [1, D], no bias (cfg.hop_find_words only)

  void init(const VqaConfig& cfg, uint64_t seed);
  nn::ParamList parameters();
};

// One forward's inputs (owned tensors).
struct VqaBatch {
  Tensor images;       // F32 [Bi, C', S, S], normalised (C' = input_channels())
  Tensor image_index;  // I32 [Bq]: question q asks about images[image_index[q]]
  Tensor tokens;       // I32 [Bq, T], <cls> first, <pad> after the question
  Tensor pad;          // U8 [Bq, T], 1 = padding
};

// Pixels (any size/channels; converted to RGB or gray as the model needs and
// resized bilinearly to image_size when different) -> normalised CHW in out
// (x/255 - 0.5) / 0.5, then the coordinate channels if configured; out holds
// input_channels() * S * S floats.
void vqa_image_to_input(const VqaConfig& cfg, const Image& img, float* out);
// Tokenises (clear errors for empty questions and unknown words) and pads.
void vqa_encode_questions(const Vqa& m, const std::vector<std::string>& questions,
                          const std::vector<int32_t>& image_index, VqaBatch* b);
VqaBatch make_vqa_batch(const Vqa& m, const std::vector<Image>& images,
                        const std::vector<int32_t>& image_index, const std::vector<std::string>& questions);

// Attention maps of a forward, for inspection.
struct VqaProbes {
  nn::FusionProbes fusion;  // text->image per fusion layer [Bq, H, T, P]
  nn::HopProbes hop;        // hop attention's two hops [Bq, H, cells] (cfg.hop_heads > 0)
};

// images [Bi, C', S, S] -> image tokens [Bi, P, D]. With cfg.film, question [Bq, D] (the
// pooled question) and image_index [Bq] must be given and the result is [Bq, P, D].
Var vqa_encode_image(Graph& g, Vqa& m, Var images, Var question = {}, const Tensor* image_index = nullptr,
                     Var* stem_cells = nullptr);
// -> logits [Bq, K]
Var vqa_forward(Graph& g, Vqa& m, const VqaBatch& b, VqaProbes* probes = nullptr);

// Loads DIR/model.safetensors (or a .safetensors path) written by the trainer.
Vqa load_vqa(const std::string& model_path);

}  // namespace mmkit
