#include "mmkit/models/captioner.h"

#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/image/to_tensor.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/json_config.h"

namespace mmkit {

void CaptionDecoderConfig::validate() const {
  auto pos = [](const char* name, int64_t v) {
    MMKIT_CHECK(v > 0, "captioner config: decoder ", name, " must be positive, got ", v);
  };
  pos("vocab_size", vocab_size);
  pos("dim", dim);
  pos("depth", depth);
  pos("heads", heads);
  pos("mlp_dim", mlp_dim);
  MMKIT_CHECK(max_len >= 2, "captioner config: decoder max_len must be >= 2 (BOS + one word), got ", max_len);
  MMKIT_CHECK(dim % heads == 0, "captioner config: decoder dim ", dim, " is not divisible by heads ", heads);
  MMKIT_CHECK(dropout >= 0.f && dropout < 1.f, "captioner config: dropout must be in [0, 1)");
  for (auto [name, id] : {std::pair{"pad_id", pad_id}, {"bos_id", bos_id}, {"eos_id", eos_id}})
    MMKIT_CHECK(id >= 0 && id < vocab_size, "captioner config: ", name, " ", id, " outside the vocabulary of ",
                vocab_size);
  nn::activation_from_name(activation);
}

void CaptionerConfig::validate() const {
  vision.validate();
  MMKIT_CHECK(vision.num_classes == 0, "captioner config: the vision encoder has no head (num_classes 0), got ",
              vision.num_classes);
  decoder.validate();
}

std::string CaptionerConfig::to_json() const {
  const CaptionDecoderConfig& d = decoder;
  nlohmann::json j;
  j["model"] = "captioner";
  j["vision"] = nlohmann::json::parse(vision.to_json());
  j["decoder"] = {{"vocab_size", d.vocab_size}, {"dim", d.dim},
                  {"depth", d.depth},           {"heads", d.heads},
                  {"mlp_dim", d.mlp_dim},       {"max_len", d.max_len},
                  {"norm_first", d.norm_first}, {"tie_embeddings", d.tie_embeddings},
                  {"activation", d.activation}, {"dropout", d.dropout},
                  {"layer_norm_eps", d.eps},    {"pad_id", d.pad_id},
                  {"bos_id", d.bos_id},         {"eos_id", d.eos_id}};
  return j.dump();
}

CaptionerConfig CaptionerConfig::from_json(const std::string& text, const std::string& where) {
  nlohmann::json j = parse_json(text, where);
  MMKIT_CHECK(j.is_object(), where, ": config must be a JSON object");
  MMKIT_CHECK(get_string(j, "model", where, "") == "captioner", where, ": not a captioner config (model = '",
              get_string(j, "model", where, ""), "')");
  MMKIT_CHECK(j.contains("vision") && j["vision"].is_object(), where, ": config field 'vision' must be an object");
  MMKIT_CHECK(j.contains("decoder") && j["decoder"].is_object(), where, ": config field 'decoder' must be an object");
  CaptionerConfig c;
  c.vision = VitConfig::from_json(j["vision"].dump());
  const nlohmann::json& d = j["decoder"];
  const std::string w = where + " decoder";
  CaptionDecoderConfig& o = c.decoder;
  o.vocab_size = get_int(d, "vocab_size", w);
  o.dim = get_int(d, "dim", w);
  o.depth = get_int(d, "depth", w);
  o.heads = get_int(d, "heads", w);
  o.mlp_dim = get_int(d, "mlp_dim", w);
  o.max_len = get_int(d, "max_len", w);
  o.norm_first = get_bool(d, "norm_first", w, false);
  o.tie_embeddings = get_bool(d, "tie_embeddings", w, true);
  o.activation = get_string(d, "activation", w, "gelu");
  o.dropout = float(get_double(d, "dropout", w, 0.0));
  o.eps = float(get_double(d, "layer_norm_eps", w, 1e-5));
  o.pad_id = int32_t(get_int(d, "pad_id", w, 0));
  o.bos_id = int32_t(get_int(d, "bos_id", w, 1));
  o.eos_id = int32_t(get_int(d, "eos_id", w, 2));
  c.validate();
  return c;
}

void CaptionDecoder::init(const CaptionDecoderConfig& c, Rng& rng) {
  c.validate();
  cfg = c;
  tok_embed.init("decoder.tok_embed", c.vocab_size, c.dim, 0.02f, rng);
  pos_embed.init("decoder.pos_embed", c.max_len, c.dim, 0.02f, rng);
  nn::DecoderLayerConfig lc;
  lc.dim = c.dim;
  lc.heads = c.heads;
  lc.mlp_dim = c.mlp_dim;
  lc.act = nn::activation_from_name(c.activation);
  lc.norm_first = c.norm_first;
  lc.dropout = c.dropout;
  lc.eps = c.eps;
  layers.clear();
  layers.resize(size_t(c.depth));
  for (int64_t i = 0; i < c.depth; ++i) layers[size_t(i)].init("decoder.layers." + std::to_string(i), lc, rng);
  if (c.norm_first) norm.init("decoder.norm", c.dim, c.eps);
  if (!c.tie_embeddings) {
    lm_head_weight.init("lm_head.weight", Shape{c.vocab_size, c.dim}, true);
    nn::init_uniform(lm_head_weight, 1.f / std::sqrt(float(c.dim)), rng);
  }
  lm_head_bias.init("lm_head.bias", Shape{c.vocab_size}, false);  // zeros
}

void CaptionDecoder::collect(nn::ParamList& p) {
  tok_embed.collect(p);
  pos_embed.collect(p);
  for (auto& l : layers) l.collect(p);
  if (cfg.norm_first) norm.collect(p);
  if (!cfg.tie_embeddings) p.push_back(&lm_head_weight);
  p.push_back(&lm_head_bias);
}

void Captioner::init(const CaptionerConfig& c, uint64_t seed) {
  c.validate();
  cfg = c;
  vision.init(c.vision, seed);
  for (Parameter* p : vision.parameters()) p->name = "vision." + p->name;
  Rng rng = Rng::derive(seed, 1);  // the decoder's stream, independent of the encoder's
  if (has_memory_proj()) memory_proj.init("memory_proj", c.vision.dim, c.decoder.dim, true, rng);
  decoder.init(c.decoder, rng);
}

nn::ParamList Captioner::parameters() {
  nn::ParamList p = vision.parameters();
  if (has_memory_proj()) memory_proj.collect(p);
  decoder.collect(p);
  return p;
}

Var captioner_encode(Graph& g, Captioner& m, Var images) {
  Var x = vit_encode(g, m.vision, images);  // [B, P+1, Dv]
  if (m.cfg.vision.norm_first) x = nn::layer_norm(g, m.vision.norm, x);
  if (m.has_memory_proj()) x = nn::linear(g, m.memory_proj, x);
  return x;
}

Var caption_decoder_forward(Graph& g, CaptionDecoder& d, const Tensor& ids, Var memory,
                            const CaptionDecodeOptions& opt) {
  const CaptionDecoderConfig& c = d.cfg;
  MMKIT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::i32, "caption decoder: ids must be I32 [B, T], got ",
              dtype_name(ids.dtype()), " ", ids.shape().str());
  const int64_t B = ids.dim(0), T = ids.dim(1);
  MMKIT_CHECK(T >= 1 && T <= c.max_len, "caption decoder: ", T, " tokens, the model has ", c.max_len,
              " positions");
  const Shape ms = g.shape(memory);
  MMKIT_CHECK(ms.n == 3 && ms[0] == B && ms[2] == c.dim, "caption decoder: memory must be [", B, ", M, ",
              c.dim, "], got ", ms.str());
  Tensor positions = g.alloc(Shape{T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) positions.ptr<int32_t>()[t] = int32_t(t);
  Var x = nn::embedding(g, d.tok_embed, ids);                                  // [B, T, D]
  x = ag::add_broadcast(g, x, nn::embedding(g, d.pos_embed, positions));       // + [T, D]
  x = ag::dropout(g, x, c.dropout);
  nn::DecoderMasks masks;
  masks.tgt_key_padding = opt.key_padding;
  for (size_t l = 0; l < d.layers.size(); ++l) {
    masks.cross_probs_out = l + 1 == d.layers.size() ? opt.cross_probs_out : nullptr;
    x = nn::transformer_decoder_layer(g, d.layers[l], x, memory, masks);
  }
  if (c.norm_first) x = nn::layer_norm(g, d.norm, x);
  return ag::linear(g, x, g.param(d.head_weight()), g.param(d.lm_head_bias));  // [B, T, V]
}

// ------------------------------------------------------------------ loading and input

CaptionModel load_captioner(const std::string& model_path) {
  const std::string path = resolve_model_file(model_path, "train one with `mmkit train caption --out DIR`");
  io::SafetensorsFile f = io::SafetensorsFile::open(path);
  const auto& meta = f.metadata();
  MMKIT_CHECK(meta.count("config") && meta.count("vocab"), path,
              ": no 'config'/'vocab' metadata; not an mmkit captioner");
  CaptionModel m;
  CaptionerConfig cfg = CaptionerConfig::from_json(meta.at("config"), path + " config");
  m.vocab = text::CaptionVocab::from_json(meta.at("vocab"), path + " vocab");
  MMKIT_CHECK(m.vocab.size() == cfg.decoder.vocab_size, path, ": vocabulary has ", m.vocab.size(),
              " words, the config says ", cfg.decoder.vocab_size);
  m.model.init(cfg, 0);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(f, m.model.parameters(), lo);
  return m;
}

Tensor caption_input(const Captioner& m, const std::vector<Image>& images) {
  const VitConfig& v = m.cfg.vision;
  const int64_t n = int64_t(images.size()), S = v.image_size, C = v.channels;
  Tensor t = Tensor::empty(Shape{n, C, S, S});
  for (int64_t i = 0; i < n; ++i) {
    Image im = fit_image(images[size_t(i)], S, C);
    pixels_to_chw(im.pixels.data(), int(S), int(S), int(C), v.pixel_mean, v.pixel_std, t.f32() + i * C * S * S);
  }
  return t;
}

}  // namespace mmkit
