#include "mmkit/train/clip_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/data/image_text_dataset.h"
#include "mmkit/eval/zero_shot_eval.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/io/layouts.h"
#include "mmkit/models/clip_export.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/train/train_loop.h"
#include "mmkit/util/file_util.h"

namespace mmkit::train {

// history.json's record of an epoch: the field names are the keys.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ClipEpochRecord, epoch, train_loss, train_acc, zero_shot_acc, logit_scale, seconds,
                                   pairs_per_s, losses)

namespace {

// The loss of a batch: CLIP's symmetric contrastive loss, or SigLIP's
// sigmoid loss when `sigmoid` (with clip.logit_bias). logits (optional) gets
// the [B, B] logits. Data-parallel (comm of several ranks): the loss of this
// rank's rows against the features of every rank's rows (open_clip's local
// loss with gathered features; for the sigmoid loss only the texts are
// gathered), logits [rows, B].
Var clip_loss(Graph& g, Clip& clip, const Tensor& pixels, const Tensor& ids, Tensor* logits,
              dist::Communicator* comm = nullptr, bool sigmoid = false) {
  Var img = clip_encode_image(g, clip, g.constant(pixels));
  Var txt = clip_encode_text(g, clip, ids);
  const bool gathered = comm && comm->size() > 1;
  if (sigmoid) {
    Var scale = g.param(clip.logit_scale), bias = g.param(clip.logit_bias);
    return gathered ? ag::sigmoid_loss_gathered(g, img, txt, scale, bias, *comm, logits)
                    : ag::sigmoid_loss(g, img, txt, scale, bias, logits);
  }
  if (gathered) return ag::clip_contrastive_loss_gathered(g, img, txt, g.param(clip.logit_scale), *comm, logits);
  return ag::clip_contrastive_loss(g, img, txt, g.param(clip.logit_scale), logits);
}

// open_clip's SigLIP initialisation (init_logit_scale = log 10, init_logit_bias = -10). A model
// that has a bias already (a SigLIP, or a sigmoid-loss CLIP to fine-tune) keeps it.
void init_sigmoid_loss_parameters(Clip& clip, bool scale_too) {
  if (scale_too) clip.logit_scale.value.f32()[0] = std::log(10.f);
  clip.add_logit_bias(-10.f);
}

// CLIP clips the temperature so logits are scaled by at most 100. A SigLIP checkpoint is
// fine-tuned from the scale it was trained to, which may lie above that: only the lower bound.
void clamp_logit_scale(Clip& clip) {
  float& t = clip.logit_scale.value.f32()[0];
  t = std::max(t, 0.f);
  if (!clip.cfg.siglip()) t = std::min(t, std::log(100.f));
}

}  // namespace

float clip_train_step(Graph& g, Clip& clip, AdamW& opt, const Tensor& pixels, const Tensor& ids, float lr,
                      float clip_grad, Tensor* logits) {
  g.reset();
  Var loss = clip_loss(g, clip, pixels, ids, logits);
  const float lv = g.data(loss)[0];
  if (!std::isfinite(lv)) return lv;  // the caller reports it; weights stay as they were
  backward_and_update(g, loss, opt, lr, clip_grad);
  clamp_logit_scale(clip);
  return lv;
}

namespace {

ClipEpochRecord record_from_json(const nlohmann::json& j) { return j.get<ClipEpochRecord>(); }

bool is_caption_file(const std::string& d) {
  auto ends = [&](const char* s) { return d.size() >= std::strlen(s) && d.compare(d.size() - std::strlen(s), std::strlen(s), s) == 0; };
  return ends(".jsonl") || ends(".csv");
}

class ClipTask : public TrainTask {
 public:
  explicit ClipTask(const ClipTrainOptions& o) : o_(o), is_file_(is_caption_file(o.data)) {
    MMKIT_CHECK(o.freeze.empty() || o.freeze == "image" || o.freeze == "text",
                "--freeze must be image or text, got '", o.freeze, "'");
    MMKIT_CHECK(o.loss == "contrastive" || o.loss == "sigmoid", "--loss must be contrastive or sigmoid, got '", o.loss,
                "'");
  }

  Info info() const override {
    Info i;
    i.name = "CLIP";
    i.format = "mmkit.clip.checkpoint.v1";
    i.unit = "pairs/s";
    i.min_batch = 2;
    i.batch_why = " (contrastive training needs negatives)";
    return i;
  }

  void setup(const io::SafetensorsFile* resume, std::FILE* log) override {
    load_data();
    ClipConfig cfg = o_.model;
    if (resume) {
      cfg = ClipConfig::from_json(resume->metadata().at("config"));
      if (cfg.siglip()) {
        // A SigLIP run keeps its SentencePiece model beside model.safetensors (save_model).
        sp_tok_ = open_siglip_tokenizer("", resume->path(), cfg.vocab_size);
      } else {
        tok_ = tokenizer_from_metadata(*resume);
        MMKIT_CHECK(tok_, resume->path(), ": no tokenizer in the checkpoint metadata");
      }
      clip_.init(cfg, o_.seed);
      if (sigmoid_) init_sigmoid_loss_parameters(clip_, false);  // the checkpoint's values replace these
    } else {
      if (!o_.init.empty()) {
        const std::string init_file = resolve_model_file(o_.init);  // a folder: its model.safetensors
        auto src = load_clip(init_file);
        const io::Layout from_layout = io::detect_layout(io::SafetensorsFile::open(init_file));
        layout_ = from_layout == io::Layout::hf_clip ? "hf_clip" : from_layout == io::Layout::hf_siglip ? "hf_siglip" : "openai_clip";
        cfg = src->cfg;
        if (cfg.siglip()) {
          MMKIT_CHECK(sigmoid_, o_.init, " is a SigLIP model: fine-tune it with its own loss, --loss sigmoid");
          MMKIT_CHECK(is_file_, o_.init, " is a SigLIP model (", cfg.image_resolution, " px, SentencePiece "
                      "tokenizer): fine-tune it on an image-caption file (--data pairs.jsonl or .csv), not Fashion-MNIST");
          sp_tok_ = open_siglip_tokenizer(o_.vocab, init_file, cfg.vocab_size);
          init_dir_ = parent_dir(init_file).empty() ? "." : parent_dir(init_file);
        } else {
          tok_ = choose_tokenizer(log);
        }
        clip_.init(cfg, o_.seed);
        // A CLIP fine-tuned with the sigmoid loss gets a bias (-10, or the source's when it has one);
        // SigLIP's is one of its parameters already.
        if (sigmoid_) init_sigmoid_loss_parameters(clip_, false);
        auto dst = clip_.parameters(), from = src->parameters();
        for (size_t k = 0; k < dst.size(); ++k)
          if (k < from.size() && from[k]->name == dst[k]->name)
            std::memcpy(dst[k]->value.raw(), from[k]->value.raw(), dst[k]->value.nbytes());
        std::fprintf(log, "fine-tuning %s (%s layout)\n", o_.init.c_str(), layout_.c_str());
      } else {
        tok_ = choose_tokenizer(log);
        cfg.vocab_size = tok_->vocab_size();
        if (!is_file_) cfg.image_resolution = train_.rows;
        clip_.init(cfg, o_.seed);
        if (sigmoid_) init_sigmoid_loss_parameters(clip_, true);
      }
    }
    if (tok_)
      MMKIT_CHECK(tok_->vocab_size() <= cfg.vocab_size, "the tokenizer has ", tok_->vocab_size(),
                  " tokens but the model's embedding table only ", cfg.vocab_size);
    const int64_t R = cfg.image_resolution;
    if (is_file_) {
      std::vector<std::string> paths;
      for (auto& p : pairs_) paths.push_back(p.image);
      loader_ = std::make_unique<data::ImageBatchLoader>(paths, preprocess_preset(cfg.siglip() ? "siglip" : "clip", int(R)),
                                                         o_.workers, o_.augment && o_.flip);
    } else {
      MMKIT_CHECK(train_.rows == R && train_.cols == R, "Fashion-MNIST images are ", train_.rows, "x", train_.cols,
                  ", the model expects ", R, "x", R);
      // Zero-shot evaluation data (Fashion-MNIST test images): preprocessed once.
      const int64_t n = o_.eval_images > 0 ? std::min(o_.eval_images, test_.n) : test_.n;
      test_pixels_ = data::fmnist_clip_pixels(test_, n);
      test_labels_.assign(test_.labels.begin(), test_.labels.begin() + n);
    }
  }

  nn::ParamList parameters() override {
    nn::ParamList params = clip_.parameters();  // with the logit bias of the sigmoid loss
    for (Parameter* p : params) {
      const bool visual = p->name.rfind("visual.", 0) == 0;
      const bool loss_param = p->name == "logit_scale" || p->name == "logit_bias";
      if ((o_.freeze == "image" && visual) || (o_.freeze == "text" && !visual && !loss_param)) p->trainable = false;
    }
    return params;
  }
  int64_t train_size() const override { return is_file_ ? int64_t(pairs_.size()) : train_.n; }

  void describe(std::FILE* log, const RunShape& s) const override {
    const ClipConfig& c = clip_.cfg;
    std::fprintf(log,
                 "CLIP: image %lldx%lld patch %lld width %lld x%lld layers | text ctx %lld width %lld x%lld layers, "
                 "vocab %lld | embed %lld | %lld parameters (%lld trained%s)\n"
                 "data: %lld pairs (%s); epochs: %d x %lld steps of %d; threads: %d\n",
                 (long long)c.image_resolution, (long long)c.image_resolution, (long long)c.vision_patch_size,
                 (long long)c.vision_width, (long long)c.vision_layers, (long long)c.context_length,
                 (long long)c.transformer_width, (long long)c.transformer_layers, (long long)c.vocab_size,
                 (long long)c.embed_dim, (long long)s.parameters, (long long)s.trainable,
                 o_.freeze.empty() ? "" : (", " + o_.freeze + " tower frozen").c_str(), (long long)train_size(),
                 is_file_ ? o_.data.c_str() : "Fashion-MNIST + generated captions", s.epochs,
                 (long long)s.steps_per_epoch, s.batch, s.threads);
  }

  void prefetch(const std::vector<int64_t>& next, int64_t row0, int64_t rows, int64_t next_step) override {
    if (loader_)
      loader_->start(std::vector<int64_t>(next.begin() + row0, next.begin() + row0 + rows),
                     mix64(o_.seed ^ uint64_t(next_step)), row0);
  }

  void load_batch(const std::vector<int64_t>& batch, int64_t row0, int64_t rows, int, int64_t step) override {
    const int64_t T = clip_.cfg.context_length, R = clip_.cfg.image_resolution, B = int64_t(batch.size());
    if (int64_t(idx_.size()) != B || row0_ != row0) {
      x_ = Tensor::empty(Shape{rows, 3, R, R});
      ids_ = Tensor::empty(Shape{rows, T}, DType::i32);
      logits_ = Tensor::empty(Shape{rows, B});  // this rank's rows against the whole batch's columns
    }
    idx_ = batch;
    row0_ = row0;
    if (loader_) loader_->finish(x_.f32());
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t k = batch[size_t(row0 + i)];
      std::string caption;
      if (loader_)
        caption = pairs_[size_t(k)].caption;
      else
        caption = data::fmnist_clip_pair(train_, k, mix64(o_.seed ^ mix64(uint64_t(step) * 65536 + uint64_t(row0 + i))),
                                         o_.augment, x_.f32() + i * 3 * R * R);
      std::memcpy(ids_.ptr<int32_t>() + i * T, tokens_of(caption).data(), size_t(T) * 4);
    }
  }

  StepOutput forward(Graph& g, int, int64_t) override {
    StepOutput out;
    out.loss = clip_loss(g, clip_, x_, ids_, &logits_, comm_, sigmoid_);
    const int64_t rows = x_.shape()[0], B = int64_t(idx_.size());
    out.weight = double(rows);
    // In-batch image->text accuracy: the top caption is the image's own
    // (caption files) or one of its class (Fashion-MNIST, where a batch holds
    // ~batch/10 captions of each class and any of them is right).
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = logits_.f32() + i * B;
      const int64_t j = std::max_element(row, row + B) - row, self = row0_ + i;
      out.metric += loader_ ? j == self : train_.labels[size_t(idx_[size_t(j)])] == train_.labels[size_t(idx_[size_t(self)])];
    }
    return out;
  }

  void after_update(float loss) override {
    clamp_logit_scale(clip_);
    losses_.push_back(loss);
  }
  std::string progress_extra() const override {
    char b[32];
    std::snprintf(b, sizeof b, " T %.1f", std::exp(double(clip_.logit_scale.value.f32()[0])));
    if (sigmoid_) std::snprintf(b + std::strlen(b), sizeof b - std::strlen(b), " b %.2f", double(clip_.logit_bias.value.f32()[0]));
    return b;
  }

  nlohmann::json end_epoch(const EpochStats& s, std::FILE* log) override {
    const double scale = std::exp(double(clip_.logit_scale.value.f32()[0]));
    const double rate = s.seconds > 0 ? double(s.items) / s.seconds : 0;
    double zs = -1;
    if (!is_file_)
      zs = zero_shot_accuracy(clip_, *tok_, test_pixels_.data(), test_labels_, data::fmnist_prompt_names(),
                              data::fmnist_heldout_templates())
               .top1;
    std::fprintf(log, "epoch %d/%d: loss %.4f, in-batch acc %.4f, temperature 1/%.1f", s.epoch, s.epochs,
                 s.train_loss, s.train_metric, scale);
    if (sigmoid_) std::fprintf(log, ", bias %.3f", double(clip_.logit_bias.value.f32()[0]));
    if (zs >= 0) std::fprintf(log, " | zero-shot test top-1 %.4f (held-out templates)", zs);
    std::fprintf(log, " | %.1f s, %.0f pairs/s\n", s.seconds, rate);
    nlohmann::json r = ClipEpochRecord{s.epoch, s.train_loss, s.train_metric, zs, scale, s.seconds, rate, losses_};
    if (sigmoid_) r["logit_bias"] = clip_.logit_bias.value.f32()[0];  // an extra key: contrastive records are unchanged
    losses_.clear();
    return r;
  }

  // In-batch accuracy as "train", zero-shot accuracy (when measured) as "test".
  EpochPoint curve_point(const nlohmann::json& r) const override {
    EpochPoint p;
    p.epoch = r.at("epoch");
    p.train_loss = r.at("train_loss");
    p.train_acc = r.at("train_acc");
    if (r.at("zero_shot_acc").get<double>() >= 0) p.test_acc = r.at("zero_shot_acc");
    return p;
  }
  std::string curve_title() const override {
    return sigmoid_ ? "CLIP: sigmoid loss; in-batch (train) and zero-shot (test) accuracy"
                    : "CLIP: contrastive loss; in-batch (train) and zero-shot (test) accuracy";
  }

  std::string config_json() const override { return clip_.cfg.to_json(); }
  void checkpoint_metadata(std::map<std::string, std::string>* meta) const override {
    if (tok_) set_tokenizer_metadata(*meta, *tok_);
  }
  void save_model(const std::string& path) override {
    std::map<std::string, std::string> meta;
    if (tok_) set_tokenizer_metadata(meta, *tok_);
    save_clip_model(path, clip_, meta, layout_);
    // A SigLIP is saved as the Hugging Face folder it came from: its tokenizer (the run's, on
    // resume) and preprocessing files beside the weights and config.json.
    if (clip_.cfg.siglip() && !init_dir_.empty()) {
      const std::string dir = parent_dir(path).empty() ? "./" : parent_dir(path);  // "out/"
      for (const std::string& f : siglip_folder_files(init_dir_))
        if (!path_exists(dir + f)) copy_file_atomic(init_dir_ + "/" + f, dir + f);
    }
  }
  nlohmann::json options_json() const override {
    return {{"data", o_.data},
            {"freeze", o_.freeze},
            {"augment", o_.augment},
            {"eval_images", o_.eval_images},
            {"loss", o_.loss}};
  }
  void save_state(nlohmann::json* j) const override {
    (*j)["losses"] = losses_;
    (*j)["source_layout"] = layout_;
  }
  // (A resumed SigLIP run's tokenizer files are already in its folder: init_dir_ stays empty.)
  void load_state(const TrainStateReader& r) override {
    losses_ = r.get<std::vector<double>>("losses");
    layout_ = r.get<std::string>("source_layout", "openai_clip");
  }

 private:
  void load_data() {
    if (is_file_) {
      pairs_ = data::read_image_text_file(o_.data);
      if (o_.limit_train > 0 && o_.limit_train < int64_t(pairs_.size())) pairs_.resize(size_t(o_.limit_train));
      return;
    }
    const std::string dir = o_.data == "fashion-mnist" ? std::string(data::kFashionMnistDir) : o_.data;
    train_ = data::first_images(data::load_fashion_mnist(dir, "train"), o_.limit_train);
    test_ = data::first_images(data::load_fashion_mnist(dir, "test"), o_.limit_test);
  }

  // --vocab, else the tokenizer of --init, else BPE merges learned from the captions.
  std::unique_ptr<text::ClipTokenizer> choose_tokenizer(std::FILE* log) const {
    if (!o_.vocab.empty()) return open_clip_tokenizer(o_.vocab);
    if (!o_.init.empty()) {
      if (auto t = tokenizer_from_metadata(io::SafetensorsFile::open(o_.init))) return t;
      return open_clip_tokenizer("", o_.init);
    }
    std::vector<std::string> corpus = is_file_ ? std::vector<std::string>() : data::fmnist_training_captions();
    for (const auto& p : pairs_) corpus.push_back(p.caption);
    return std::make_unique<text::ClipTokenizer>(text::learn_clip_tokenizer(corpus, o_.bpe_merges, log));
  }

  const std::vector<int32_t>& tokens_of(const std::string& c) {
    auto it = tok_cache_.find(c);
    if (it == tok_cache_.end()) {
      const int T = int(clip_.cfg.context_length);
      it = tok_cache_.emplace(c, sp_tok_ ? sp_tok_->encode_padded(c, T) : tok_->encode_padded(c, T)).first;
    }
    return it->second;
  }

  const ClipTrainOptions& o_;
  const bool is_file_;
  const bool sigmoid_ = o_.loss == "sigmoid";
  data::ImageSet train_, test_;
  std::vector<data::ImageTextPair> pairs_;
  std::unique_ptr<data::ImageBatchLoader> loader_;
  std::vector<float> test_pixels_;
  std::vector<int32_t> test_labels_;
  std::unique_ptr<text::ClipTokenizer> tok_;         // CLIP's BPE, or
  std::unique_ptr<text::SiglipTokenizer> sp_tok_;    // a SigLIP's SentencePiece model
  std::string init_dir_;                             // the SigLIP folder of --init (its tokenizer files)
  std::unordered_map<std::string, std::vector<int32_t>> tok_cache_;
  std::string layout_ = "openai_clip";
  Clip clip_;
  // This rank's rows of the batch: [rows, 3, R, R] pixels, I32 [rows, T] ids,
  // [rows, B] scaled similarities against every caption of the global batch.
  Tensor x_, ids_, logits_;
  std::vector<int64_t> idx_;  // the global batch
  int64_t row0_ = 0;           // this rank's first row in it
  dist::Communicator* comm_ = &dist::world();
  std::vector<double> losses_;  // this epoch's per-step losses
};

}  // namespace

std::vector<ClipEpochRecord> train_clip(const ClipTrainOptions& o, std::FILE* log) {
  ClipTask task(o);
  return typed_history(run_training(task, o, log), record_from_json);
}

}  // namespace mmkit::train
