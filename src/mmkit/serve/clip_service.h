// CLIP behind two dynamic batchers (text tower, image tower) for a
// multi-threaded server. Request threads tokenize / decode / preprocess
// their own inputs, submit single items and block on the result; one worker
// per tower runs batched forwards, and the two share an engine mutex so only
// one forward runs at a time (each uses every core through OpenMP).
//
//   ClipService svc(ClipRunner::open("clip.safetensors"), {32, 5}, {32, 5});
//   std::vector<float> e = svc.embed_text("a photo of a cat");    // L2-normalised, [E]
//   ZeroShotProbs z = svc.zero_shot(img, {"cat", "dog"}, {});
#pragma once
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mmkit/infer/clip_runner.h"
#include "mmkit/serve/dynamic_batcher.h"

namespace mmkit::serve {

using Embedding = std::vector<float>;

struct ZeroShotProbs {
  std::vector<float> probs;  // [labels]: softmax (sums to 1), or per-label sigmoids (`kind`)
  int64_t best = 0;
  std::string kind = "softmax";  // "softmax" | "sigmoid"
};

class ClipService {
 public:
  // threads: OpenMP threads of each forward (0 = all cores). engine: the mutex every forward
  // holds; nullptr = this service's own. Several models in one server pass one mutex, so that
  // one forward runs at a time on all cores (two at once would oversubscribe them).
  ClipService(ClipRunner runner, BatcherOptions text_opt, BatcherOptions image_opt, int threads = 0,
              std::mutex* engine = nullptr);
  ~ClipService();

  // False when no tokenizer could be opened; text_error() says why.
  bool has_text() const { return has_text_; }
  const std::string& text_error() const { return text_error_; }
  int64_t dim() const { return dim_; }
  int64_t image_resolution() const { return res_; }
  const ClipConfig& config() const { return cfg_; }

  // Raw (normalize = false) or L2-normalised embeddings; inputs from many
  // calls are batched together. Text without a tokenizer throws mmkit::Error.
  // At most one batch (max_batch items) of a call is queued at a time, so one request with
  // many inputs neither fills the queue (503 for everyone else) nor holds more than a batch
  // of preprocessed pixels.
  std::vector<Embedding> embed_texts(const std::vector<std::string>& texts, bool normalize = true);
  std::vector<Embedding> embed_images(const std::vector<Image>& images, bool normalize = true);
  // Images produced one at a time by image(i), i < n (decoded on demand and dropped after
  // preprocessing: a request's decoded pixels are one image's).
  std::vector<Embedding> embed_images(size_t n, const std::function<Image(size_t)>& image, bool normalize = true);

  // CLIP zero-shot with prompt ensembling (ClipRunner::zero_shot's maths):
  // label embeddings = renormalised mean of normalised template embeddings,
  // cached (bounded) so repeated label sets cost no text forwards.
  ZeroShotProbs zero_shot(const Image& image, const std::vector<std::string>& labels,
                          const std::vector<std::string>& templates);

  // The mutex every model forward in the process holds (classifier, VQA, ... too).
  std::mutex& engine_mutex() { return *engine_ptr_; }
  // Tokens of each text up to and including its end token (OpenAI's usage.prompt_tokens).
  std::vector<size_t> token_counts(const std::vector<std::string>& texts) const;
  BatcherStats text_stats() const { return text_->stats(); }
  BatcherStats image_stats() const { return image_->stats(); }
  size_t queued() const { return text_->queued() + image_->queued(); }

 private:
  std::vector<Embedding> label_embeddings(const std::vector<std::string>& labels,
                                          const std::vector<std::string>& templates);

  ClipRunner runner_;
  ClipConfig cfg_;
  int64_t dim_ = 0, res_ = 0;
  float logit_scale_ = 1;
  std::optional<float> logit_bias_;  // SigLIP and sigmoid-loss models: probabilities are per-label sigmoids
  bool has_text_ = false;
  int threads_ = 0;
  std::string text_error_;
  std::mutex engine_;
  std::mutex* engine_ptr_ = &engine_;
  std::unique_ptr<DynamicBatcher<std::vector<int32_t>, Embedding>> text_;
  std::unique_ptr<DynamicBatcher<std::vector<float>, Embedding>> image_;
  // label-embedding cache: key "template\x1ftemplate...\x1elabel", LRU, kCacheMax entries
  static constexpr size_t kCacheMax = 4096;
  std::mutex cache_mu_;
  std::list<std::pair<std::string, Embedding>> lru_;
  std::unordered_map<std::string, std::list<std::pair<std::string, Embedding>>::iterator> cache_;
};

void l2_normalize(Embedding& e);

}  // namespace mmkit::serve
