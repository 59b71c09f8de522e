#include "mmkit/serve/clip_service.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>

#include "mmkit/core/parallel.h"

namespace mmkit::serve {

void l2_normalize(Embedding& e) {
  double s = 0;
  for (float v : e) s += double(v) * v;
  const float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.f;
  for (float& v : e) v *= inv;
}

namespace {

std::vector<Embedding> rows(const Tensor& t) {
  const int64_t E = t.shape()[-1], N = t.numel() / E;
  std::vector<Embedding> out(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) out[size_t(i)].assign(t.f32() + i * E, t.f32() + (i + 1) * E);
  return out;
}

template <class F>
std::vector<Embedding> wait_all(std::vector<F>& fs, bool normalize) {
  std::vector<Embedding> out;
  out.reserve(fs.size());
  for (auto& f : fs) {
    out.push_back(f.get());
    if (normalize) l2_normalize(out.back());
  }
  return out;
}

// OpenMP settings are per calling thread: each batcher worker sets its team
// size and flush-to-zero once, before its first forward.
void init_worker_thread(int threads) {
  thread_local bool done = false;
  if (!done) set_num_threads(threads);
  done = true;
}

}  // namespace

ClipService::ClipService(ClipRunner runner, BatcherOptions text_opt, BatcherOptions image_opt, int threads,
                         std::mutex* engine)
    : runner_(std::move(runner)), threads_(threads), engine_ptr_(engine ? engine : &engine_) {
  // From the inference engine: no second (graph) copy of the weights.
  cfg_ = runner_.config();
  dim_ = cfg_.embed_dim;
  res_ = cfg_.image_resolution;
  logit_scale_ = std::exp(runner_.engine().logit_scale());
  if (runner_.engine().has_logit_bias()) logit_bias_ = runner_.engine().logit_bias();
  try {
    runner_.tokenize({""});  // the tokenizer is loaded now: the lazy load is not thread-safe
    has_text_ = true;
  } catch (const Error& e) {
    text_error_ = e.what();
  }
  text_ = std::make_unique<DynamicBatcher<std::vector<int32_t>, Embedding>>(
      [this](std::vector<std::vector<int32_t>>& ids) {
        init_worker_thread(threads_); return rows(runner_.embed_token_ids(ids, false, int(ids.size()))); },
      text_opt, engine_ptr_);
  image_ = std::make_unique<DynamicBatcher<std::vector<float>, Embedding>>(
      [this](std::vector<std::vector<float>>& px) {
        init_worker_thread(threads_);
        const size_t P = size_t(3 * res_ * res_);
        std::vector<float> x(px.size() * P);
        for (size_t i = 0; i < px.size(); ++i) std::memcpy(x.data() + i * P, px[i].data(), P * 4);
        return rows(runner_.embed_pixels(x.data(), int64_t(px.size()), false, int(px.size())));
      },
      image_opt, engine_ptr_);
}

ClipService::~ClipService() {
  text_.reset();  // joins the workers before runner_ goes away
  image_.reset();
}

std::vector<Embedding> ClipService::embed_texts(const std::vector<std::string>& texts, bool normalize) {
  if (texts.empty()) return {};
  MMKIT_CHECK(has_text_, "text embeddings are unavailable: ", text_error_);
  const size_t chunk = size_t(std::max(1, text_->options().max_batch));
  std::vector<Embedding> out;
  out.reserve(texts.size());
  for (size_t a = 0; a < texts.size(); a += chunk) {
    const std::vector<std::string> part(texts.begin() + long(a), texts.begin() + long(std::min(texts.size(), a + chunk)));
    std::vector<std::future<Embedding>> fs;
    for (auto& ids : runner_.tokenize(part)) fs.push_back(text_->submit(std::move(ids)));
    for (Embedding& e : wait_all(fs, normalize)) out.push_back(std::move(e));
  }
  return out;
}

std::vector<size_t> ClipService::token_counts(const std::vector<std::string>& texts) const {
  MMKIT_CHECK(has_text_, "text embeddings are unavailable: ", text_error_);
  // Rows are padded to the context length: CLIP's with zeros after <|endoftext|>, SigLIP's with
  // more </s> after its </s>. A row that fills the context has no padding.
  std::vector<size_t> out;
  for (const auto& ids : runner_.tokenize(texts)) {
    size_t run = 0;
    while (run < ids.size() && ids[ids.size() - 1 - run] == ids.back()) ++run;
    out.push_back(ids.size() - run + (ids.empty() || ids.back() != 0 ? 1 : 0));
  }
  return out;
}

std::vector<Embedding> ClipService::embed_images(const std::vector<Image>& images, bool normalize) {
  return embed_images(images.size(), [&](size_t i) { return images[i]; }, normalize);
}

std::vector<Embedding> ClipService::embed_images(size_t n, const std::function<Image(size_t)>& image, bool normalize) {
  const size_t P = size_t(3 * res_ * res_), chunk = size_t(std::max(1, image_->options().max_batch));
  std::vector<Embedding> out;
  out.reserve(n);
  for (size_t a = 0; a < n; a += chunk) {
    std::vector<std::future<Embedding>> fs;
    for (size_t i = a; i < std::min(n, a + chunk); ++i) {
      std::vector<float> px(P);
      preprocess_image(image(i), runner_.preprocess(), px.data());  // on the caller's thread; the Image dies here
      fs.push_back(image_->submit(std::move(px)));
    }
    for (Embedding& e : wait_all(fs, normalize)) out.push_back(std::move(e));
  }
  return out;
}

std::vector<Embedding> ClipService::label_embeddings(const std::vector<std::string>& labels,
                                                     const std::vector<std::string>& templates) {
  std::string tkey;
  for (auto& t : templates) tkey += t + "\x1f";
  std::vector<Embedding> out(labels.size());
  std::vector<size_t> miss;
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    for (size_t i = 0; i < labels.size(); ++i) {
      auto it = cache_.find(tkey + "\x1e" + labels[i]);
      if (it == cache_.end()) {
        miss.push_back(i);
        continue;
      }
      lru_.splice(lru_.begin(), lru_, it->second);
      out[i] = it->second->second;
    }
  }
  if (miss.empty()) return out;
  // All missing prompts go to the text batcher at once: one request's labels share batches.
  std::vector<std::string> prompts;
  for (size_t i : miss)
    for (const auto& t : templates) {
      std::string p = t;
      p.replace(p.find("{}"), 2, labels[i]);
      prompts.push_back(p);
    }
  std::vector<Embedding> es = embed_texts(prompts, true);
  std::lock_guard<std::mutex> l(cache_mu_);
  for (size_t k = 0; k < miss.size(); ++k) {
    Embedding mean(size_t(dim_), 0.f);
    for (size_t t = 0; t < templates.size(); ++t)
      for (size_t j = 0; j < mean.size(); ++j) mean[j] += es[k * templates.size() + t][j];
    l2_normalize(mean);
    out[miss[k]] = mean;
    std::string key = tkey + "\x1e" + labels[miss[k]];
    if (cache_.count(key)) continue;
    lru_.emplace_front(key, std::move(mean));
    cache_[key] = lru_.begin();
    if (lru_.size() > kCacheMax) {
      cache_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return out;
}

ZeroShotProbs ClipService::zero_shot(const Image& image, const std::vector<std::string>& labels,
                                     const std::vector<std::string>& templates_in) {
  MMKIT_CHECK(!labels.empty(), "zero-shot needs at least one label");
  std::vector<std::string> templates = templates_in;
  if (templates.empty()) templates.push_back("a photo of a {}.");
  for (const auto& t : templates)
    MMKIT_CHECK(t.find("{}") != std::string::npos, "template '", t, "' has no {} placeholder for the label");
  Embedding img = embed_images({image}, true)[0];
  std::vector<double> logits;
  double m = -1e30;
  for (const Embedding& c : label_embeddings(labels, templates)) {
    double dot = 0;
    for (size_t j = 0; j < c.size(); ++j) dot += double(img[j]) * c[j];
    logits.push_back(double(logit_scale_) * dot);
    m = std::max(m, logits.back());
  }
  ZeroShotProbs z;
  z.kind = runner_.probability_kind();
  if (logit_bias_) {
    // SigLIP or a sigmoid-loss CLIP: each label's own sigmoid, as ClipRunner::zero_shot.
    for (double v : logits) z.probs.push_back(float(1.0 / (1.0 + std::exp(-(v + *logit_bias_)))));
  } else {
    double s = 0;
    for (double& v : logits) s += (v = std::exp(v - m));
    for (double v : logits) z.probs.push_back(float(v / s));
  }
  for (size_t l = 1; l < z.probs.size(); ++l)
    if (z.probs[l] > z.probs[size_t(z.best)]) z.best = int64_t(l);
  return z;
}

}  // namespace mmkit::serve
