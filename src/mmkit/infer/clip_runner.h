// End-to-end CLIP inference: files/strings in, embeddings and zero-shot
// probabilities out. Used by `mmkit embed`, `mmkit zero-shot` and the server.
// Runs on infer::ClipEngine, so quantised files (`mmkit quantize`) work too. One call at a time:
// the engine's activation buffers are shared, so use one runner per thread.
//
//   mmkit::ClipRunner r = mmkit::ClipRunner::open("model.safetensors", "bpe_simple_vocab_16e6.txt.gz");
//   mmkit::Tensor e = r.embed_texts({"a photo of a cat."}, /*normalize=*/true);   // [1, E]
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/infer/clip_engine.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/text/clip_tokenizer.h"
#include "mmkit/text/siglip_tokenizer.h"

namespace mmkit {

struct ZeroShotResult {
  std::vector<std::vector<float>> probs;  // [images][labels]
  std::vector<int64_t> best;              // argmax label per image
};

class ClipRunner {
 public:
  // vocab: the OpenAI merges file (.txt.gz) or a directory with HF
  // vocab.json + merges.txt. Empty: the tokenizer stored in the model's
  // metadata if any, else looks beside the model for either.
  // preprocess: a preset of image/preprocess.h; "" = the model's own (siglip for SigLIP, else clip).
  static ClipRunner open(const std::string& model_path, const std::string& vocab = "",
                         const std::string& preprocess = "");

  std::vector<std::vector<int32_t>> tokenize(const std::vector<std::string>& texts) const;
  // [N, E]; normalize = L2-normalise each row.
  Tensor embed_texts(const std::vector<std::string>& texts, bool normalize, int batch = 64);
  Tensor embed_images(const std::vector<Image>& images, bool normalize, int batch = 16);
  // The same towers for callers that tokenize / preprocess themselves (the
  // server does both on its request threads, so the forward thread only runs
  // the model): ids are rows of context_length token ids (tokenize()'s
  // output); pixels are n preprocessed images [n, 3, R, R] (preprocess()).
  Tensor embed_token_ids(const std::vector<std::vector<int32_t>>& ids, bool normalize, int batch = 64);
  Tensor embed_pixels(const float* pixels, int64_t n, bool normalize, int batch = 16);
  int64_t embed_dim() const { return config().embed_dim; }
  int64_t image_resolution() const { return config().image_resolution; }
  // CLIP's prompt ensembling: each label's text embedding is the renormalised
  // mean of its normalised template embeddings ("{}" replaced by the label);
  // probs = softmax(exp(logit_scale) * cos(image, label)); a model with a logit bias (SigLIP, or a
  // CLIP trained with the sigmoid loss): per label, sigmoid(exp(logit_scale) * cos(image, label) +
  // logit_bias) (independent, not summing to 1).
  ZeroShotResult zero_shot(const std::vector<Image>& images, const std::vector<std::string>& labels,
                           const std::vector<std::string>& templates);

  const ClipConfig& config() const { return engine_->config(); }
  // The inference engine every embed/zero-shot call above runs on (f32, int8, f16 or bf16 weights).
  infer::ClipEngine& engine() { return *engine_; }
  // The model as autograd parameters (training-side evaluation helpers such as zero_shot_accuracy),
  // loaded with load_clip on first use: a second, f32 copy of the weights.
  Clip& model();
  // Loaded on first use, so image-only work needs no vocabulary file. Throws
  // if its vocabulary is larger than the model's token embedding, and for SigLIP models.
  const text::ClipTokenizer& tokenizer() const;
  // SigLIP models: `vocab` (a spiece.model file or a folder holding one) or the spiece.model beside
  // the model. Throws naming the file when it is missing or its vocabulary size differs from the
  // model's token embedding rows.
  const text::SiglipTokenizer& siglip_tokenizer() const;
  // What zero_shot's probabilities are: "softmax" (CLIP) or "sigmoid" (a model with a logit bias).
  const char* probability_kind() const { return engine_->has_logit_bias() ? "sigmoid" : "softmax"; }
  const PreprocessConfig& preprocess() const { return pre_; }

 private:
  std::unique_ptr<infer::ClipEngine> engine_;
  std::shared_ptr<std::mutex> engine_mu_ = std::make_shared<std::mutex>();  // embed_token_ids / embed_pixels
  std::unique_ptr<Clip> model_;
  mutable std::unique_ptr<text::ClipTokenizer> tok_;
  mutable std::unique_ptr<text::SiglipTokenizer> sp_tok_;
  std::string vocab_, model_path_;
  PreprocessConfig pre_;
};

void l2_normalize_rows(Tensor& t);

// The same computations on a model already in memory (training, evaluation):
// ids: rows of exactly context_length tokens -> [N, E];
Tensor clip_embed_ids(Clip& m, const std::vector<std::vector<int32_t>>& ids, bool normalize, int batch = 64);
// x: N preprocessed images [N, 3, R, R] -> [N, E]. `arena` (optional) holds
// the activations; a caller that embeds in several calls passes the same one,
// so the memory is allocated (and page-faulted in) once, not per call.
Tensor clip_embed_pixels(Clip& m, const float* x, int64_t N, bool normalize, int batch = 16, Arena* arena = nullptr);
// CLIP's prompt ensembling: label l's row is the renormalised mean of the
// normalised embeddings of every template with "{}" = labels[l] -> [L, E].
Tensor clip_class_embeddings(Clip& m, const text::ClipTokenizer& tok, const std::vector<std::string>& labels,
                             const std::vector<std::string>& templates);

// A SigLIP model's SentencePiece tokenizer: `vocab` (a spiece.model / tokenizer.model file, or a
// folder holding one), else the one beside `model_file` (spiece.model, SigLIP 2's tokenizer.model).
// Throws naming the file when it is missing or its vocabulary size differs from `vocab_size` (the
// model's token embedding rows).
std::unique_ptr<text::SiglipTokenizer> open_siglip_tokenizer(const std::string& vocab, const std::string& model_file,
                                                             int64_t vocab_size);
// The tokenizer and preprocessing files of the Hugging Face SigLIP folder `dir` that exist there
// (spiece.model or tokenizer.model, tokenizer_config.json, special_tokens_map.json, tokenizer.json,
// preprocessor_config.json): what a fine-tuned copy of the model carries along.
std::vector<std::string> siglip_folder_files(const std::string& dir);

// The CLIP tokenizer from `vocab`: the OpenAI merges file (.txt.gz) or a
// directory with HF vocab.json + merges.txt (or the merges file). Empty
// `vocab`: the tokenizer embedded in `model_path`'s metadata (see below) if
// present, else files beside `model_path`. Throws naming what it looked for.
std::unique_ptr<text::ClipTokenizer> open_clip_tokenizer(const std::string& vocab,
                                                         const std::string& model_path = "");

// Token ids of each text, padded to the context length: `mmkit tokenize` and the Python module's
// mmkit.tokenize. The tokenizer is open_clip_tokenizer(vocab, model); the context length is the
// model's (its config metadata), else 77. A SigLIP model: its SentencePiece tokenizer (ClipRunner's),
// rows padded with </s> to its context length. -> [texts][context_length]
std::vector<std::vector<int32_t>> tokenize_clip_texts(const std::vector<std::string>& texts,
                                                      const std::string& vocab, const std::string& model);

// A tokenizer inside the checkpoint, so a model trained with its own BPE is
// one self-contained file: metadata key "tokenizer.bpe_merges" holds
// tok.merges_text() (the vocabulary is rebuilt from the merges in OpenAI's
// layout). Works for trained tokenizers (from_merges), OpenAI's (~0.5 MB)
// and CLIP's Hugging Face files; throws for a tokenizer whose ids the merges
// cannot reproduce (a vocab.json with its own id order).
inline constexpr const char* kTokenizerMetadataKey = "tokenizer.bpe_merges";
void set_tokenizer_metadata(std::map<std::string, std::string>& meta, const text::ClipTokenizer& tok);
// nullptr when the file has no "tokenizer.bpe_merges"; throws naming the
// file and the bad line when it is malformed.
std::unique_ptr<text::ClipTokenizer> tokenizer_from_metadata(const io::SafetensorsFile& f);

}  // namespace mmkit
