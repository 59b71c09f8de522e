#include "mmkit/infer/clip_runner.h"

#include <mutex>

#include <sys/stat.h>

#include <cmath>
#include <cstring>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/layouts.h"
#include "mmkit/util/file_util.h"

namespace mmkit {

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string dir_of(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

}  // namespace

void set_tokenizer_metadata(std::map<std::string, std::string>& meta, const text::ClipTokenizer& tok) {
  std::string text = tok.merges_text();
  // Only the merges are stored; the ids come back in OpenAI's layout. Refuse a tokenizer whose ids
  // would not survive that (a Hugging Face vocab.json with its own id order), rather than write a
  // model whose embedding rows no longer match its tokens.
  text::ClipTokenizer rebuilt = text::ClipTokenizer::from_merges_text(text);
  bool same = rebuilt.vocab_size() == tok.vocab_size();
  int32_t id = 0;
  for (; same && id < tok.vocab_size(); ++id) {
    try {
      same = rebuilt.token(id) == tok.token(id);
    } catch (const Error&) {
      same = false;  // an id without a token on one side
    }
  }
  MMKIT_CHECK(same, "set_tokenizer_metadata: the tokenizer's vocabulary does not follow CLIP's layout (bytes, "
              "bytes + </w>, one token per merge, <|startoftext|>, <|endoftext|>), so its merges alone "
              "cannot reproduce its ids (first difference at id ", id - 1, " of ", tok.vocab_size(), ")");
  meta[kTokenizerMetadataKey] = std::move(text);
}

std::unique_ptr<text::ClipTokenizer> tokenizer_from_metadata(const io::SafetensorsFile& f) {
  auto it = f.metadata().find(kTokenizerMetadataKey);
  if (it == f.metadata().end()) return nullptr;
  try {
    return std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_merges_text(it->second));
  } catch (const Error& e) {
    fail(f.path(), ": metadata '", kTokenizerMetadataKey, "' is not a valid tokenizer: ", e.what());
  }
}

namespace {

// open_clip_tokenizer, with the model file already open when the caller has it (ClipRunner).
std::unique_ptr<text::ClipTokenizer> open_tokenizer(const std::string& vocab, const std::string& model,
                                                    const io::SafetensorsFile* model_file) {
  std::vector<std::string> candidates;
  if (!vocab.empty()) {
    candidates.push_back(vocab);
  } else {
    if (!model.empty()) {
      if (model_file) {
        if (auto tok = tokenizer_from_metadata(*model_file)) return tok;
      } else if (exists(model)) {
        if (auto tok = tokenizer_from_metadata(io::SafetensorsFile::open(model))) return tok;
      }
    }
    candidates.push_back(dir_of(model) + "/bpe_simple_vocab_16e6.txt.gz");
    candidates.push_back(dir_of(model));
  }
  for (const std::string& c : candidates) {
    struct stat st;
    if (::stat(c.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (exists(c + "/vocab.json") && exists(c + "/merges.txt"))
        return std::make_unique<text::ClipTokenizer>(
            text::ClipTokenizer::from_hf_files(c + "/vocab.json", c + "/merges.txt"));
      if (exists(c + "/bpe_simple_vocab_16e6.txt.gz"))
        return std::make_unique<text::ClipTokenizer>(
            text::ClipTokenizer::from_openai_merges(c + "/bpe_simple_vocab_16e6.txt.gz"));
      continue;
    }
    return std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_openai_merges(c));
  }
  fail("no CLIP vocabulary found",
       !vocab.empty() ? " at " + vocab
                      : model.empty() ? std::string()
                                      : " (" + model + " has no '" + kTokenizerMetadataKey +
                                            "' metadata, and no vocabulary files are beside it)",
       ": pass --vocab with the OpenAI merges file (bpe_simple_vocab_16e6.txt.gz) or a directory "
       "holding Hugging Face vocab.json + merges.txt");
}

}  // namespace

std::unique_ptr<text::ClipTokenizer> open_clip_tokenizer(const std::string& vocab, const std::string& model) {
  // A run or Hugging Face folder: its model.safetensors (whose folder holds any vocabulary files).
  return open_tokenizer(vocab, is_directory(model) ? resolve_model_file(model) : model, nullptr);
}

std::vector<std::vector<int32_t>> tokenize_clip_texts(const std::vector<std::string>& texts,
                                                      const std::string& vocab, const std::string& model) {
  if (!model.empty() &&
      io::detect_layout(io::SafetensorsFile::open(resolve_model_file(model))) == io::Layout::hf_siglip)
    return ClipRunner::open(model, vocab).tokenize(texts);  // SentencePiece, padded with </s> to 64
  std::unique_ptr<text::ClipTokenizer> tok = open_clip_tokenizer(vocab, model);
  int context = 77;
  if (!model.empty()) {
    io::SafetensorsFile f = io::SafetensorsFile::open(resolve_model_file(model));
    auto it = f.metadata().find("config");
    if (it != f.metadata().end()) context = int(ClipConfig::from_json(it->second).context_length);
  }
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& t : texts) ids.push_back(tok->encode_padded(t, context));
  return ids;
}

void l2_normalize_rows(Tensor& t) {
  const int64_t E = t.shape()[-1], N = t.numel() / E;
  float* d = t.f32();
  for (int64_t i = 0; i < N; ++i) {
    double s = 0;
    for (int64_t e = 0; e < E; ++e) s += double(d[i * E + e]) * d[i * E + e];
    float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.f;
    for (int64_t e = 0; e < E; ++e) d[i * E + e] *= inv;
  }
}

ClipRunner ClipRunner::open(const std::string& model_path, const std::string& vocab,
                            const std::string& preprocess) {
  ClipRunner r;
  r.engine_ = infer::ClipEngine::open(model_path);
  r.vocab_ = vocab;
  r.model_path_ = r.engine_->path();  // the file, when model_path is a folder
  const std::string preset = !preprocess.empty() ? preprocess : r.engine_->config().siglip() ? "siglip" : "clip";
  r.pre_ = preprocess_preset(preset, int(r.engine_->config().image_resolution));
  return r;
}

Clip& ClipRunner::model() {
  if (!model_) model_ = load_clip(model_path_);
  return *model_;
}

const text::ClipTokenizer& ClipRunner::tokenizer() const {
  MMKIT_CHECK(!config().siglip(), model_path_, " is a SigLIP model: its tokenizer is SentencePiece, not CLIP's BPE");
  if (!tok_) {
    auto tok = open_tokenizer(vocab_, model_path_, &engine_->file());
    // An id past the token embedding would read outside it; catch the mismatch by name here.
    MMKIT_CHECK(tok->vocab_size() <= config().vocab_size, model_path_, ": the tokenizer has ",
                tok->vocab_size(), " tokens but the model's token embedding has ", config().vocab_size,
                " rows (wrong --vocab for this model?)");
    tok_ = std::move(tok);
  }
  return *tok_;
}

std::unique_ptr<text::SiglipTokenizer> open_siglip_tokenizer(const std::string& vocab, const std::string& model_file,
                                                             int64_t vocab_size) {
  // A folder: SigLIP's spiece.model, else SigLIP 2's tokenizer.model (Gemma's).
  auto in_folder = [](const std::string& dir) {
    for (const char* name : {"spiece.model", "tokenizer.model"})
      if (exists(dir + "/" + name)) return dir + "/" + name;
    return dir + "/spiece.model";
  };
  std::string path = vocab.empty() ? in_folder(dir_of(model_file)) : vocab;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path = in_folder(path);
  MMKIT_CHECK(exists(path), model_file, ": SigLIP model without its tokenizer: ", path,
              " not found (pass --vocab with the model's spiece.model or tokenizer.model)");
  auto tok = std::make_unique<text::SiglipTokenizer>(text::SiglipTokenizer::from_file(path));
  MMKIT_CHECK(tok->vocab_size() == vocab_size, path, ": the tokenizer has ", tok->vocab_size(),
              " pieces but the model's token embedding (", model_file, ") has ", vocab_size,
              " rows: not this model's tokenizer");
  return tok;
}

std::vector<std::string> siglip_folder_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* name : {"spiece.model", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.json", "preprocessor_config.json"})
    if (exists(dir + "/" + name)) out.push_back(name);
  return out;
}

const text::SiglipTokenizer& ClipRunner::siglip_tokenizer() const {
  MMKIT_CHECK(config().siglip(), model_path_, " is a CLIP model: it has no SentencePiece tokenizer");
  if (!sp_tok_) sp_tok_ = open_siglip_tokenizer(vocab_, model_path_, config().vocab_size);
  return *sp_tok_;
}

std::vector<std::vector<int32_t>> ClipRunner::tokenize(const std::vector<std::string>& texts) const {
  std::vector<std::vector<int32_t>> out;
  if (texts.empty()) return out;
  if (config().siglip()) {
    const text::SiglipTokenizer& tok = siglip_tokenizer();
    for (const auto& t : texts) out.push_back(tok.encode_padded(t, int(config().context_length)));
    return out;
  }
  const text::ClipTokenizer& tok = tokenizer();
  for (const auto& t : texts) out.push_back(tok.encode_padded(t, int(config().context_length)));
  return out;
}

Tensor clip_embed_ids(Clip& m, const std::vector<std::vector<int32_t>>& ids, bool normalize, int batch) {
  const int64_t N = int64_t(ids.size()), E = m.cfg.embed_dim, T = m.cfg.context_length;
  Tensor out = Tensor::empty(Shape{N, E});
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  for (int64_t i0 = 0; i0 < N; i0 += batch) {
    int64_t n = std::min<int64_t>(batch, N - i0);
    g.reset();
    Tensor t = g.alloc(Shape{n, T}, DType::i32);
    for (int64_t i = 0; i < n; ++i) {
      const auto& row = ids[size_t(i0 + i)];
      MMKIT_CHECK(int64_t(row.size()) == T, "token row of length ", row.size(), ", the model's context is ", T);
      std::memcpy(t.ptr<int32_t>() + i * T, row.data(), size_t(T) * 4);
    }
    Var e = clip_encode_text(g, m, t);
    std::memcpy(out.f32() + i0 * E, g.data(e), size_t(n * E) * 4);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

Tensor clip_embed_pixels(Clip& m, const float* x, int64_t N, bool normalize, int batch, Arena* arena) {
  const int64_t E = m.cfg.embed_dim, R = m.cfg.image_resolution, per = 3 * R * R;
  Tensor out = Tensor::empty(Shape{N, E});
  Arena local;
  Graph g(arena ? *arena : local);
  g.grad_enabled = false;
  for (int64_t i0 = 0; i0 < N; i0 += batch) {
    int64_t n = std::min<int64_t>(batch, N - i0);
    g.reset();
    Tensor xb = Tensor::view(const_cast<float*>(x + i0 * per), Shape{n, 3, R, R}, DType::f32);
    Var e = clip_encode_image(g, m, g.constant(xb));
    std::memcpy(out.f32() + i0 * E, g.data(e), size_t(n * E) * 4);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

Tensor clip_class_embeddings(Clip& m, const text::ClipTokenizer& tok, const std::vector<std::string>& labels,
                             const std::vector<std::string>& templates_in) {
  MMKIT_CHECK(!labels.empty(), "zero-shot needs at least one label");
  std::vector<std::string> templates = templates_in;
  if (templates.empty()) templates.push_back("a photo of a {}.");
  for (const auto& t : templates)
    MMKIT_CHECK(t.find("{}") != std::string::npos, "template '", t, "' has no {} placeholder for the label");
  const int64_t L = int64_t(labels.size()), E = m.cfg.embed_dim;
  // Class embeddings: mean of normalised template embeddings, renormalised.
  Tensor cls = Tensor::zeros(Shape{L, E});
  for (int64_t l = 0; l < L; ++l) {
    std::vector<std::vector<int32_t>> ids;
    for (const auto& t : templates) {
      std::string p = t;
      p.replace(p.find("{}"), 2, labels[size_t(l)]);
      ids.push_back(tok.encode_padded(p, int(m.cfg.context_length)));
    }
    Tensor e = clip_embed_ids(m, ids, true);
    for (int64_t k = 0; k < int64_t(ids.size()); ++k)
      for (int64_t j = 0; j < E; ++j) cls.f32()[l * E + j] += e.f32()[k * E + j];
  }
  l2_normalize_rows(cls);
  return cls;
}

Tensor ClipRunner::embed_texts(const std::vector<std::string>& texts, bool normalize, int batch) {
  const auto ids = tokenize(texts);
  const int64_t N = int64_t(ids.size()), E = config().embed_dim, T = config().context_length;
  Tensor out = Tensor::empty(Shape{N, E});
  std::vector<int32_t> flat;
  for (int64_t i0 = 0; i0 < N; i0 += batch) {
    const int64_t n = std::min<int64_t>(batch, N - i0);
    flat.resize(size_t(n * T));
    for (int64_t i = 0; i < n; ++i) std::memcpy(flat.data() + i * T, ids[size_t(i0 + i)].data(), size_t(T) * 4);
    engine_->encode_text(flat.data(), n, T, out.f32() + i0 * E);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

Tensor ClipRunner::embed_token_ids(const std::vector<std::vector<int32_t>>& ids, bool normalize, int batch) {
  for (size_t i = 0; i < ids.size(); ++i)
    MMKIT_CHECK(int64_t(ids[i].size()) == config().context_length, "token row ", i, ": got ", ids[i].size(),
                " ids, expected ", config().context_length);
  // The server's text and image batchers call these from two threads; the
  // engine's buffers are shared, so its calls are serialised here.
  std::lock_guard<std::mutex> lock(*engine_mu_);
  const int64_t N = int64_t(ids.size()), E = config().embed_dim, T = config().context_length;
  Tensor out = Tensor::empty(Shape{N, E});
  std::vector<int32_t> flat;
  for (int64_t i0 = 0; i0 < N; i0 += batch) {
    const int64_t n = std::min<int64_t>(batch, N - i0);
    flat.resize(size_t(n * T));
    for (int64_t i = 0; i < n; ++i) std::memcpy(flat.data() + i * T, ids[size_t(i0 + i)].data(), size_t(T) * 4);
    engine_->encode_text(flat.data(), n, T, out.f32() + i0 * E);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

Tensor ClipRunner::embed_pixels(const float* pixels, int64_t n, bool normalize, int batch) {
  std::lock_guard<std::mutex> lock(*engine_mu_);
  const int64_t E = config().embed_dim, R = config().image_resolution;
  Tensor out = Tensor::empty(Shape{n, E});
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    const int64_t m = std::min<int64_t>(batch, n - i0);
    engine_->encode_image(pixels + i0 * 3 * R * R, m, out.f32() + i0 * E);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

Tensor ClipRunner::embed_images(const std::vector<Image>& images, bool normalize, int batch) {
  const int64_t N = int64_t(images.size()), E = config().embed_dim, R = config().image_resolution;
  Tensor out = Tensor::empty(Shape{N, E});
  std::vector<float> x;
  for (int64_t i0 = 0; i0 < N; i0 += batch) {
    int64_t n = std::min<int64_t>(batch, N - i0);
    x.resize(size_t(n * 3 * R * R));
    for (int64_t i = 0; i < n; ++i) preprocess_image(images[size_t(i0 + i)], pre_, x.data() + i * 3 * R * R);
    engine_->encode_image(x.data(), n, out.f32() + i0 * E);
  }
  if (normalize) l2_normalize_rows(out);
  return out;
}

ZeroShotResult ClipRunner::zero_shot(const std::vector<Image>& images,
                                     const std::vector<std::string>& labels,
                                     const std::vector<std::string>& templates_in) {
  MMKIT_CHECK(!labels.empty(), "zero-shot needs at least one label");
  std::vector<std::string> templates = templates_in;
  if (templates.empty()) templates.push_back("a photo of a {}.");
  for (const auto& t : templates)
    MMKIT_CHECK(t.find("{}") != std::string::npos, "template '", t, "' has no {} placeholder for the label");
  const int64_t L = int64_t(labels.size()), E = config().embed_dim;
  // Class embeddings as clip_class_embeddings: renormalised mean of normalised template embeddings.
  Tensor cls = Tensor::zeros(Shape{L, E});
  for (int64_t l = 0; l < L; ++l) {
    std::vector<std::string> prompts;
    for (const auto& t : templates) {
      std::string p = t;
      prompts.push_back(p.replace(p.find("{}"), 2, labels[size_t(l)]));
    }
    Tensor e = embed_texts(prompts, true);
    for (int64_t k = 0; k < int64_t(prompts.size()); ++k)
      for (int64_t j = 0; j < E; ++j) cls.f32()[l * E + j] += e.f32()[k * E + j];
  }
  l2_normalize_rows(cls);
  Tensor img = embed_images(images, true);
  const float scale = std::exp(engine_->logit_scale());
  const bool sigmoid = engine_->has_logit_bias();
  ZeroShotResult r;
  for (int64_t i = 0; i < int64_t(images.size()); ++i) {
    std::vector<double> logits(static_cast<size_t>(L));
    double m = -1e30;
    for (int64_t l = 0; l < L; ++l) {
      double dot = 0;
      for (int64_t j = 0; j < E; ++j) dot += double(img.f32()[i * E + j]) * cls.f32()[l * E + j];
      logits[size_t(l)] = scale * dot;
      m = std::max(m, logits[size_t(l)]);
    }
    std::vector<float> p;
    if (sigmoid) {
      // SigLIP or a sigmoid-loss CLIP: each label's own probability sigmoid(logit + bias)
      // (the ranking is the softmax's; the values need not sum to 1).
      for (double v : logits) p.push_back(float(1.0 / (1.0 + std::exp(-(v + engine_->logit_bias())))));
    } else {
      double s = 0;
      for (double& v : logits) s += (v = std::exp(v - m));
      for (double v : logits) p.push_back(float(v / s));
    }
    int64_t best = 0;
    for (int64_t l = 1; l < L; ++l)
      if (p[size_t(l)] > p[size_t(best)]) best = l;
    r.probs.push_back(std::move(p));
    r.best.push_back(best);
  }
  return r;
}

}  // namespace mmkit
