#include "mmkit/models/vqa.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/util/file_util.h"

namespace mmkit {

void VqaConfig::validate() const {
  auto pos = [](const char* name, int64_t v) {
    MMKIT_CHECK(v > 0, "VQA config: ", name, " must be positive, got ", v);
  };
  pos("image_size", image_size);
  pos("channels", channels);
  pos("patch_size", patch_size);
  pos("dim", dim);
  pos("heads", heads);
  pos("mlp_dim", mlp_dim);
  pos("max_question_len", max_question_len);
  MMKIT_CHECK(channels == 1 || channels == 3, "VQA config: channels must be 1 or 3, got ", channels);
  MMKIT_CHECK(image_layers >= 0 && text_layers >= 0 && fusion_layers >= 0,
              "VQA config: layer counts must be >= 0");
  MMKIT_CHECK(image_size % patch_size == 0, "VQA config: image_size ", image_size,
              " is not a multiple of patch_size ", patch_size);
  if (stem_patch > 0) {
    pos("stem_dim", stem_dim);
    MMKIT_CHECK(patch_size % stem_patch == 0, "VQA config: patch_size ", patch_size,
                " is not a multiple of stem_patch ", stem_patch);
  }
  MMKIT_CHECK(image_pool == "max" || image_pool == "mean" || image_pool == "flatten",
              "VQA config: image_pool must be max, mean or flatten, got '",
              image_pool, "'");
  MMKIT_CHECK(!film || stem_patch > 0, "VQA config: film needs a conv stem (stem_patch > 0), got stem_patch ",
              stem_patch);
  MMKIT_CHECK(relation_dim >= 0, "VQA config: relation_dim must be >= 0, got ", relation_dim);
  MMKIT_CHECK(relation_dim == 0 || relation_layers >= 1, "VQA config: relation_layers must be >= 1, got ",
              relation_layers);
  MMKIT_CHECK(hop_heads >= 0 && hop_channels > 0, "VQA config: hop_heads must be >= 0 and hop_channels > 0, got ",
              hop_heads, " and ", hop_channels);
  MMKIT_CHECK(hop_cells == "film" || hop_cells == "image", "VQA config: hop_cells must be film or image, got '",
              hop_cells, "'");
  MMKIT_CHECK(hop_heads == 0 || hop_cells == "image" || film,
              "VQA config: hop attention on the FiLM cells (hop_cells film) needs film");
  MMKIT_CHECK(hop_heads == 0 || stem_patch > 0, "VQA config: hop attention needs a conv stem (stem_patch > 0)");
  MMKIT_CHECK(hop_count >= 0, "VQA config: hop_count must be >= 0, got ", hop_count);
  MMKIT_CHECK(hop_exclude >= 0.f, "VQA config: hop_exclude must be >= 0, got ", hop_exclude);
  MMKIT_CHECK(!hop_find_words || hop_heads > 0, "VQA config: hop_find_words needs hop attention (hop_heads > 0)");
  MMKIT_CHECK(!hop_dist_pool || (hop_heads > 0 && hop_count > 0),
              "VQA config: hop_dist_pool needs hop attention with a count readout (hop_heads > 0, hop_count > 0)");
  MMKIT_CHECK(hop_beta_scale > 0.f && hop_relate_scale > 0.f, "VQA config: hop_beta_scale and hop_relate_scale must be > 0, got ",
              hop_beta_scale, " and ", hop_relate_scale);
  MMKIT_CHECK(relation_geometry >= 0, "VQA config: relation_geometry must be >= 0, got ", relation_geometry);
  MMKIT_CHECK(relation_dim == 0 || (relation_heads >= 0 && (relation_heads == 0 || relation_dim % relation_heads == 0)),
              "VQA config: relation_dim ", relation_dim, " is not divisible by relation_heads ", relation_heads);
  MMKIT_CHECK(dim % heads == 0, "VQA config: dim ", dim, " is not divisible by heads ", heads);
  MMKIT_CHECK(dropout >= 0.f && dropout < 1.f, "VQA config: dropout must be in [0, 1)");
  MMKIT_CHECK(vocab.size() >= 3, "VQA config: the question vocabulary is empty");
  MMKIT_CHECK(answers.size() >= 2, "VQA config: need at least 2 answers, got ", answers.size());
}

std::string VqaConfig::to_json() const {
  nlohmann::json j;
  j["model"] = "vqa";
  j["image_size"] = image_size;
  j["channels"] = channels;
  j["patch_size"] = patch_size;
  j["stem_patch"] = stem_patch;
  j["stem_dim"] = stem_dim;
  j["dim"] = dim;
  j["heads"] = heads;
  j["mlp_dim"] = mlp_dim;
  j["image_layers"] = image_layers;
  j["text_layers"] = text_layers;
  j["fusion_layers"] = fusion_layers;
  j["max_question_len"] = max_question_len;
  j["coord_channels"] = coord_channels;
  j["norm_first"] = norm_first;
  j["film"] = film;
  j["image_pool"] = image_pool;
  j["relation_dim"] = relation_dim;
  j["relation_layers"] = relation_layers;
  j["relation_coords"] = relation_coords;
  j["relation_heads"] = relation_heads;
  j["relation_geometry"] = relation_geometry;
  j["hop_heads"] = hop_heads;
  j["hop_channels"] = hop_channels;
  j["hop_cells"] = hop_cells;
  j["hop_count"] = hop_count;
  j["hop_exclude"] = hop_exclude;
  j["hop_find_words"] = hop_find_words;
  j["hop_dist_pool"] = hop_dist_pool;
  j["hop_beta_scale"] = hop_beta_scale;
  j["hop_relate_scale"] = hop_relate_scale;
  j["dropout"] = dropout;
  j["layer_norm_eps"] = eps;
  j["vocab"] = vocab;
  j["answers"] = answers;
  return j.dump();
}

VqaConfig VqaConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("VQA config is not valid JSON: ", e.what());
  }
  MMKIT_CHECK(j.is_object() && j.value("model", "") == "vqa", "config is not an mmkit VQA model's");
  VqaConfig c;
  auto get_int = [&](const char* k, int64_t& out) {
    MMKIT_CHECK(j.contains(k), "VQA config: missing field '", k, "'");
    MMKIT_CHECK(j[k].is_number_integer(), "VQA config: field '", k, "' must be an integer");
    out = j[k].get<int64_t>();
  };
  get_int("image_size", c.image_size);
  get_int("channels", c.channels);
  get_int("patch_size", c.patch_size);
  get_int("stem_patch", c.stem_patch);
  get_int("stem_dim", c.stem_dim);
  get_int("dim", c.dim);
  get_int("heads", c.heads);
  get_int("mlp_dim", c.mlp_dim);
  get_int("image_layers", c.image_layers);
  get_int("text_layers", c.text_layers);
  get_int("fusion_layers", c.fusion_layers);
  get_int("max_question_len", c.max_question_len);
  MMKIT_CHECK(j.contains("norm_first") && j["norm_first"].is_boolean(), "VQA config: 'norm_first' must be a boolean");
  c.norm_first = j["norm_first"];
  if (j.contains("coord_channels")) {
    MMKIT_CHECK(j["coord_channels"].is_boolean(), "VQA config: 'coord_channels' must be a boolean");
    c.coord_channels = j["coord_channels"];
  }
  c.film = false;  // models written before FiLM existed have none
  if (j.contains("film")) {
    MMKIT_CHECK(j["film"].is_boolean(), "VQA config: 'film' must be a boolean");
    c.film = j["film"];
  }
  c.image_pool = "mean";  // likewise
  if (j.contains("image_pool")) {
    MMKIT_CHECK(j["image_pool"].is_string(), "VQA config: 'image_pool' must be a string");
    c.image_pool = j["image_pool"].get<std::string>();
  }
  c.relation_dim = 0;  // likewise
  if (j.contains("relation_dim")) get_int("relation_dim", c.relation_dim);
  if (j.contains("relation_layers")) get_int("relation_layers", c.relation_layers);
  c.relation_heads = 0;
  if (j.contains("relation_heads")) get_int("relation_heads", c.relation_heads);
  if (j.contains("relation_geometry")) get_int("relation_geometry", c.relation_geometry);
  c.hop_heads = 0;
  if (j.contains("hop_heads")) get_int("hop_heads", c.hop_heads);
  if (j.contains("hop_channels")) get_int("hop_channels", c.hop_channels);
  c.hop_cells = "film";  // models written before the per-image cells existed
  if (j.contains("hop_cells")) {
    MMKIT_CHECK(j["hop_cells"].is_string(), "VQA config: 'hop_cells' must be a string");
    c.hop_cells = j["hop_cells"].get<std::string>();
  }
  c.hop_count = 0;
  if (j.contains("hop_count")) get_int("hop_count", c.hop_count);
  c.hop_dist_pool = false;
  if (j.contains("hop_dist_pool")) {
    MMKIT_CHECK(j["hop_dist_pool"].is_boolean(), "VQA config: 'hop_dist_pool' must be a boolean");
    c.hop_dist_pool = j["hop_dist_pool"];
  }
  c.hop_find_words = false;
  if (j.contains("hop_find_words")) {
    MMKIT_CHECK(j["hop_find_words"].is_boolean(), "VQA config: 'hop_find_words' must be a boolean");
    c.hop_find_words = j["hop_find_words"];
  }
  c.hop_beta_scale = 32.f;
  c.hop_relate_scale = 1.f;
  for (auto [k, v] : {std::pair<const char*, float*>{"hop_beta_scale", &c.hop_beta_scale},
                      {"hop_relate_scale", &c.hop_relate_scale}})
    if (j.contains(k)) {
      MMKIT_CHECK(j[k].is_number(), "VQA config: '", k, "' must be a number");
      *v = j[k].get<float>();
    }
  c.hop_exclude = 0.f;
  if (j.contains("hop_exclude")) {
    MMKIT_CHECK(j["hop_exclude"].is_number(), "VQA config: 'hop_exclude' must be a number");
    c.hop_exclude = j["hop_exclude"].get<float>();
  }
  c.relation_coords = false;
  if (j.contains("relation_coords")) {
    MMKIT_CHECK(j["relation_coords"].is_boolean(), "VQA config: 'relation_coords' must be a boolean");
    c.relation_coords = j["relation_coords"];
  }
  if (j.contains("dropout")) c.dropout = j["dropout"].get<float>();
  if (j.contains("layer_norm_eps")) c.eps = j["layer_norm_eps"].get<float>();
  for (const char* k : {"vocab", "answers"}) {
    MMKIT_CHECK(j.contains(k) && j[k].is_array(), "VQA config: '", k, "' must be an array of strings");
    auto& dst = std::string(k) == "vocab" ? c.vocab : c.answers;
    for (auto& s : j[k]) {
      MMKIT_CHECK(s.is_string(), "VQA config: '", k, "' must be an array of strings");
      dst.push_back(s.get<std::string>());
    }
  }
  c.validate();
  return c;
}

namespace {

nn::EncoderLayerConfig layer_config(const VqaConfig& c) {
  nn::EncoderLayerConfig lc;
  lc.dim = c.dim;
  lc.heads = c.heads;
  lc.mlp_dim = c.mlp_dim;
  lc.norm_first = c.norm_first;
  lc.dropout = c.dropout;
  lc.eps = c.eps;
  return lc;
}

}  // namespace

void Vqa::init(const VqaConfig& c, uint64_t seed) {
  c.validate();
  cfg = c;
  tokenizer = text::WordTokenizer(c.vocab);
  Rng rng(seed);
  const int64_t D = c.dim, G = c.grid();
  int64_t in_ch = c.input_channels(), pe_patch = c.patch_size;
  if (c.stem_patch > 0) {
    stem.init("image.stem", in_ch, c.stem_dim, c.stem_patch, true, rng);
    in_ch = c.stem_dim;
    pe_patch = c.patch_size / c.stem_patch;
  }
  patch_embed.init("image.patch_embed", in_ch, D, pe_patch, true, rng);
  // Embedding scales: positions N(0, 0.5) and words N(0, 1) (nn.Embedding's default), not ViT's
  // 0.02 — at 0.02 the position of an object was invisible next to its patch features and
  // training never left chance even on "is the red object left" (docs/RESULTS.md).
  row_embed.init("image.row_embed", Shape{G, D}, false);
  col_embed.init("image.col_embed", Shape{G, D}, false);
  nn::init_trunc_normal(row_embed, 0.5f, rng);
  nn::init_trunc_normal(col_embed, 0.5f, rng);
  image_layers.assign(size_t(c.image_layers), {});
  for (int64_t i = 0; i < c.image_layers; ++i)
    image_layers[size_t(i)].init("image.layers." + std::to_string(i), layer_config(c), rng);
  word_embed.init("text.embed", int64_t(c.vocab.size()), D, 1.0f, rng);
  text_pos_embed.init("text.pos_embed", Shape{c.max_question_len, D}, false);
  nn::init_trunc_normal(text_pos_embed, 0.5f, rng);
  text_layers.assign(size_t(c.text_layers), {});
  for (int64_t i = 0; i < c.text_layers; ++i)
    text_layers[size_t(i)].init("text.layers." + std::to_string(i), layer_config(c), rng);
  nn::FusionConfig fc;
  fc.dim = D;
  fc.heads = c.heads;
  fc.mlp_dim = c.mlp_dim;
  fc.layers = c.fusion_layers;
  fc.norm_first = c.norm_first;
  fc.zero_init_residual = c.fusion_zero_init;
  fc.dropout = c.dropout;
  fc.eps = c.eps;
  fusion.init("fusion", fc, rng);
  head_fc1.init("head.fc1", (3 + (c.relation_dim > 0) + (c.hop_heads > 0)) * D, 2 * D, true, rng);
  head_fc2.init("head.fc2", 2 * D, int64_t(c.answers.size()), true, rng);
  if (c.image_pool == "flatten") image_flat.init("head.image_flat", c.num_patches() * D, D, true, rng);
  if (c.film) {
    // PyTorch Linear init: gamma, beta ~ +-0.6 for a unit-scale question vector, so every
    // question modulates the stem from the first step (zero init would start unconditioned).
    film_gamma.init("image.film_gamma", D, c.stem_dim, true, rng);
    film_beta.init("image.film_beta", D, c.stem_dim, true, rng);
  }
  if (c.relation_dim > 0) {
    nn::RelationConfig rc;
    rc.dim = D + (c.relation_coords ? 2 : 0);
    rc.cond_dim = D;
    rc.hidden = c.relation_dim;
    rc.layers = c.relation_layers;
    rc.out_dim = D;
    rc.attention_heads = c.relation_heads;
    rc.geometry = c.relation_geometry;
    relation.init("relation", rc, rng);
  }
  if (c.hop_heads > 0) {
    nn::HopConfig hc;
    hc.in_dim = c.stem_dim;
    hc.grid = c.image_size / c.stem_patch;
    hc.channels = c.hop_channels;
    hc.heads = c.hop_heads;
    hc.cond_dim = D;
    hc.out_dim = D;
    hc.count = c.hop_count;
    hc.exclude = c.hop_exclude;
    hc.beta_scale = c.hop_beta_scale;
    hc.relate_scale = c.hop_relate_scale;
    hc.dist_pool = c.hop_dist_pool;
    hop.init("hop", hc, rng);
    if (c.hop_find_words) hop_find_words.init("hop.find_words", D, 1, false, rng);
  }
}

nn::ParamList Vqa::parameters() {
  nn::ParamList p;
  if (cfg.stem_patch > 0) stem.collect(p);
  patch_embed.collect(p);
  p.push_back(&row_embed);
  p.push_back(&col_embed);
  for (auto& l : image_layers) l.collect(p);
  word_embed.collect(p);
  p.push_back(&text_pos_embed);
  for (auto& l : text_layers) l.collect(p);
  fusion.collect(p);
  head_fc1.collect(p);
  head_fc2.collect(p);
  if (cfg.image_pool == "flatten") image_flat.collect(p);
  if (cfg.film) {
    film_gamma.collect(p);
    film_beta.collect(p);
  }
  if (cfg.relation_dim > 0) relation.collect(p);
  if (cfg.hop_heads > 0) hop.collect(p);
  if (cfg.hop_find_words) hop_find_words.collect(p);
  return p;
}

void vqa_image_to_input(const VqaConfig& cfg, const Image& src, float* out) {
  MMKIT_CHECK(!src.empty(), "VQA: empty image");
  Image img = cfg.channels == 3 ? (src.channels == 3 ? src : to_rgb(src)) : (src.channels == 1 ? src : to_gray(src));
  if (img.width != cfg.image_size || img.height != cfg.image_size)
    img = resize_bilinear(img, int(cfg.image_size), int(cfg.image_size));
  const int64_t S = cfg.image_size, C = cfg.channels;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x)
        out[(c * S + y) * S + x] = img.at(int(x), int(y), int(c)) * (2.f / 255.f) - 1.f;
  if (cfg.coord_channels)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        out[(C * S + y) * S + x] = (2.f * float(x) + 1.f) / float(S) - 1.f;        // pixel centre x in [-1, 1]
        out[((C + 1) * S + y) * S + x] = (2.f * float(y) + 1.f) / float(S) - 1.f;  // and y
      }
}

void vqa_encode_questions(const Vqa& m, const std::vector<std::string>& questions,
                          const std::vector<int32_t>& image_index, VqaBatch* b) {
  MMKIT_CHECK(questions.size() == image_index.size(), "VQA batch: ", questions.size(), " questions but ",
              image_index.size(), " image indices");
  std::vector<std::vector<int32_t>> ids;
  size_t T = 1;
  for (auto& q : questions) {
    ids.push_back(m.tokenizer.encode(q, m.cfg.max_question_len));
    T = std::max(T, ids.back().size());
  }
  const int64_t Bq = int64_t(questions.size());
  b->tokens = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::i32);
  b->pad = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::u8);
  b->image_index = Tensor::empty(Shape{Bq}, DType::i32);
  for (int64_t q = 0; q < Bq; ++q) {
    for (size_t t = 0; t < T; ++t) {
      const bool real = t < ids[size_t(q)].size();
      b->tokens.ptr<int32_t>()[q * int64_t(T) + int64_t(t)] = real ? ids[size_t(q)][t] : text::WordTokenizer::kPad;
      b->pad.ptr<uint8_t>()[q * int64_t(T) + int64_t(t)] = real ? 0 : 1;
    }
    b->image_index.ptr<int32_t>()[q] = image_index[size_t(q)];
  }
}

VqaBatch make_vqa_batch(const Vqa& m, const std::vector<Image>& images, const std::vector<int32_t>& image_index,
                        const std::vector<std::string>& questions) {
  VqaBatch b;
  const int64_t S = m.cfg.image_size, C = m.cfg.input_channels(), Bi = int64_t(images.size());
  b.images = Tensor::empty(Shape{Bi, C, S, S});
  for (int64_t i = 0; i < Bi; ++i) vqa_image_to_input(m.cfg, images[size_t(i)], b.images.f32() + i * C * S * S);
  for (int32_t k : image_index)
    MMKIT_CHECK(k >= 0 && k < Bi, "VQA batch: image index ", k, " outside [0, ", Bi, ")");
  vqa_encode_questions(m, questions, image_index, &b);
  return b;
}

Var vqa_encode_image(Graph& g, Vqa& m, Var images, Var question, const Tensor* image_index, Var* stem_cells) {
  const VqaConfig& c = m.cfg;
  const Shape s = g.shape(images);
  MMKIT_CHECK(s.n == 4 && s[1] == c.input_channels() && s[2] == c.image_size && s[3] == c.image_size,
              "VQA: expected images [B, ", c.input_channels(), ", ", c.image_size, ", ", c.image_size, "], got ", s.str());
  MMKIT_CHECK(!c.film || (question.valid() && image_index), "VQA: a FiLM model's image encoder needs the question");
  int64_t B = s[0];
  const int64_t G = c.grid();
  Var x = images;
  if (c.stem_patch > 0) {
    const int64_t g1 = c.image_size / c.stem_patch;
    Var h = nn::patch_embedding(g, m.stem, x);                 // [Bi, g1*g1, stem_dim]
    if (c.film) {
      // Per question from here on: stem features of its image, scaled and shifted by the question.
      h = ag::gather_rows(g, h, *image_index);                 // [Bq, g1*g1, stem_dim]
      B = g.shape(h)[0];
      Var gamma = ag::repeat_rows(g, nn::linear(g, m.film_gamma, question), g1 * g1);  // [Bq, g1*g1, stem_dim]
      Var beta = ag::repeat_rows(g, nn::linear(g, m.film_beta, question), g1 * g1);
      h = ag::add(g, h, ag::add(g, ag::mul(g, h, gamma), beta));  // h * (1 + gamma) + beta
    }
    h = ag::gelu(g, h);
    if (stem_cells) *stem_cells = h;                           // [B, g1*g1, stem_dim]
    h = ag::transpose(g, h, 1, 2);                             // [B, stem_dim, g1*g1]
    x = ag::reshape(g, h, Shape{B, c.stem_dim, g1, g1});       // feature map for the next stage
  }
  Var t = nn::patch_embedding(g, m.patch_embed, x);            // [B, P, D]
  // 2D positional embedding: token p = r*G + c gets row_embed[r] + col_embed[c].
  Tensor rows = g.alloc(Shape{G * G}, DType::i32), cols = g.alloc(Shape{G * G}, DType::i32);
  for (int64_t p = 0; p < G * G; ++p) {
    rows.ptr<int32_t>()[p] = int32_t(p / G);
    cols.ptr<int32_t>()[p] = int32_t(p % G);
  }
  Var pos = ag::add(g, ag::embedding(g, g.param(m.row_embed), rows), ag::embedding(g, g.param(m.col_embed), cols));
  t = ag::add_broadcast(g, t, pos);                            // + [P, D]
  for (auto& l : m.image_layers) t = nn::transformer_encoder_layer(g, l, t);
  return t;
}

Var vqa_forward(Graph& g, Vqa& m, const VqaBatch& b, VqaProbes* probes) {
  const Shape ts = b.tokens.shape();
  MMKIT_CHECK(ts.n == 2 && ts[1] >= 1 && ts[1] <= m.cfg.max_question_len, "VQA: tokens must be [Bq, T] with T <= ",
              m.cfg.max_question_len, ", got ", ts.str());
  const int64_t Bq = ts[0], T = ts[1];
  Var words = nn::embedding(g, m.word_embed, b.tokens);        // [Bq, T, D]
  Var txt = words;
  Tensor pos_ids = g.alloc(Shape{T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) pos_ids.ptr<int32_t>()[t] = int32_t(t);
  txt = ag::add_broadcast(g, txt, ag::embedding(g, g.param(m.text_pos_embed), pos_ids));
  nn::AttentionMasks masks;
  masks.key_padding = &b.pad;
  for (auto& l : m.text_layers) txt = nn::transformer_encoder_layer(g, l, txt, masks);

  // cells: the stem's GELU output (hop attention only): [Bq, g1*g1, stem_dim] with FiLM,
  // [Bi, g1*g1, stem_dim] with hop_cells "image".
  const bool hop = m.cfg.hop_heads > 0;
  Var img, cells;
  Tensor index = b.image_index;  // without one, FiLM takes one image per question, in order
  if (m.cfg.film && !index.defined()) {
    index = g.alloc(Shape{Bq}, DType::i32);
    for (int64_t q = 0; q < Bq; ++q) index.ptr<int32_t>()[q] = int32_t(q);
  }
  if (m.cfg.film) {
    img = vqa_encode_image(g, m, g.constant(b.images), ag::max_tokens(g, txt, &b.pad), &index,
                           hop ? &cells : nullptr);  // [Bq, P, D]
  } else {
    img = vqa_encode_image(g, m, g.constant(b.images), {}, nullptr, hop ? &cells : nullptr);  // [Bi, P, D]
    if (b.image_index.defined()) img = ag::gather_rows(g, img, index);                       // [Bq, P, D]
  }
  MMKIT_CHECK(g.shape(img)[0] == Bq, "VQA: ", g.shape(img)[0], " image rows for ", Bq, " questions");

  nn::FusionOut f = nn::multimodal_fusion(g, m.fusion, txt, img, &b.pad, probes ? &probes->fusion : nullptr);
  // Text pooling: max over the question's tokens (padding excluded), so the few words that
  // carry the question (a colour, a relation) reach the head at full strength; a mean (or the
  // <cls> token) mixes them ~1/T with the words every question shares, which left training
  // on a long plateau (docs/RESULTS.md).
  Var t = ag::max_tokens(g, f.text, &b.pad);  // [Bq, D]
  Var v;  // [Bq, D]
  if (m.cfg.image_pool == "flatten")
    v = nn::linear(g, m.image_flat, ag::reshape(g, f.image, Shape{Bq, m.cfg.num_patches() * m.cfg.dim}));
  else
    v = m.cfg.image_pool == "max" ? ag::max_tokens(g, f.image, nullptr) : ag::mean_tokens(g, f.image);
  std::vector<Var> parts = {t, v, ag::mul(g, t, v)};
  if (m.cfg.relation_dim > 0) {
    Var objects = f.image;  // [Bq, P, D]
    if (m.cfg.relation_coords) {
      const int64_t G = m.cfg.grid(), P = G * G;
      Tensor xy = g.alloc(Shape{1, P, 2});
      for (int64_t p = 0; p < P; ++p) {
        xy.f32()[2 * p] = (2.f * float(p % G) + 1.f) / float(G) - 1.f;      // cell centre x
        xy.f32()[2 * p + 1] = (2.f * float(p / G) + 1.f) / float(G) - 1.f;  // and y
      }
      objects = ag::concat(g, {objects, ag::broadcast_batch(g, g.constant(xy), Bq)}, 2);  // [Bq, P, D + 2]
    }
    parts.push_back(nn::relation_network(g, m.relation, objects, t));  // + [Bq, D]
  }
  if (hop) {
    // The local features and the count read only the cells; on an image's own cells they are
    // computed once per image and gathered for its questions.
    Var L = nn::hop_local(g, m.hop, cells);  // [B, g1*g1, C2]
    Var count = nn::hop_count_cells(g, m.hop, L);  // [B, g1*g1, K] or none
    if (!m.cfg.film && b.image_index.defined()) {
      L = ag::gather_rows(g, L, index);  // [Bq, g1*g1, C2]
      if (count.valid()) count = ag::gather_rows(g, count, index);
    }
    Var find_cond;  // hop_find_words: sum_t softmax_t(s . e_t) e_t over the unpadded words, [Bq, D]
    if (m.cfg.hop_find_words) {
      Tensor mask = g.alloc(Shape{Bq, 1, T});  // -1e9 on padding
      for (int64_t i = 0; i < Bq * T; ++i) mask.f32()[i] = b.pad.ptr<uint8_t>()[i] ? -1e9f : 0.f;
      Var s = ag::reshape(g, nn::linear(g, m.hop_find_words, words), Shape{Bq, 1, T});
      Var a = ag::softmax(g, ag::add(g, s, g.constant(mask)));                 // [Bq, 1, T]
      find_cond = ag::reshape(g, ag::bmm(g, a, words), Shape{Bq, m.cfg.dim});  // [Bq, D]
    }
    parts.push_back(nn::hop_readout(g, m.hop, L, count, t, probes ? &probes->hop : nullptr, find_cond));  // + [Bq, D]
  }
  Var pooled = ag::concat(g, parts, 1);  // [Bq, 3D .. 5D]
  Var h = ag::gelu(g, nn::linear(g, m.head_fc1, pooled));
  return nn::linear(g, m.head_fc2, h);                                                         // [Bq, K]
}

Vqa load_vqa(const std::string& model_path) {
  const std::string path = resolve_model_file(model_path, "train one with `mmkit train vqa --data DIR --out DIR`");
  io::SafetensorsFile f = io::SafetensorsFile::open(path);
  auto it = f.metadata().find("config");
  MMKIT_CHECK(it != f.metadata().end(), path, ": no 'config' in the safetensors metadata; not an mmkit VQA model");
  VqaConfig cfg;
  try {
    cfg = VqaConfig::from_json(it->second);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  Vqa m;
  m.init(cfg, 0);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(f, m.parameters(), lo);
  return m;
}

}  // namespace mmkit
