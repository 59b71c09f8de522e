#include "mmkit/train/caption_trainer.h"

#include <algorithm>
#include <cmath>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/caption_dataset.h"
#include "mmkit/eval/caption_eval.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/train_loop.h"

namespace mmkit::train {

namespace {

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

CaptionEpochRecord record_from_json(const nlohmann::json& j) {
  auto opt = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN; };
  CaptionEpochRecord r;
  r.epoch = j.at("epoch");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.test_loss = j.at("test_loss");
  r.test_acc = j.at("test_acc");
  r.val_object_f1 = opt("val_object_f1");
  r.val_bleu4 = opt("val_bleu4");
  r.val_cider_d = opt("val_cider_d");
  r.seconds = j.at("seconds");
  r.images_per_s = j.value("images_per_s", 0.0);
  return r;
}

// Encoded references (words only; BOS/EOS are added per batch): [image][reference][word].
std::vector<std::vector<std::vector<int32_t>>> encode_all(const data::CaptionData& d, const text::CaptionVocab& v) {
  std::vector<std::vector<std::vector<int32_t>>> w(size_t(d.n()));
  for (int64_t i = 0; i < d.n(); ++i)
    for (auto& c : d.examples[size_t(i)].captions) w[size_t(i)].push_back(v.encode(c));
  return w;
}

class CaptionTask : public TrainTask {
 public:
  explicit CaptionTask(const CaptionTrainOptions& o) : o_(o) {
    MMKIT_CHECK(!o.data_dir.empty(), "no data directory given (--data DIR with train.jsonl and test.jsonl)");
  }

  Info info() const override {
    Info i;
    i.name = "captioner";
    i.format = "mmkit.captioner.checkpoint.v1";
    i.weight_field = "tokens";
    return i;
  }

  // Configuration and vocabulary: from the checkpoint when resuming, else from the data.
  void setup(const io::SafetensorsFile* resume, std::FILE*) override {
    CaptionerConfig cfg = o_.model;
    if (resume) {
      const auto& meta = resume->metadata();
      MMKIT_CHECK(meta.count("vocab"), resume->path(), ": missing vocab metadata; not an mmkit captioner training checkpoint");
      cfg = CaptionerConfig::from_json(meta.at("config"), resume->path() + " config");
      m_.vocab = text::CaptionVocab::from_json(meta.at("vocab"), resume->path() + " vocab");
    }
    const int64_t channels = resume ? cfg.vision.channels : o_.channels;
    train_ = data::load_caption_data(o_.data_dir + "/train.jsonl", cfg.vision.image_size, channels, o_.limit_train, true);
    test_ = data::load_caption_data(o_.data_dir + "/test.jsonl", train_.size, channels, o_.limit_test, true);
    if (!resume) config_from_data(&cfg, channels);
    MMKIT_CHECK(train_.size == cfg.vision.image_size, "training images are ", train_.size,
                " pixels, the model expects ", cfg.vision.image_size);
    train_words_ = encode_all(train_, m_.vocab);
    test_words_ = encode_all(test_, m_.vocab);
    m_.model.init(cfg, o_.seed);
  }

  nn::ParamList parameters() override { return m_.model.parameters(); }
  int64_t train_size() const override { return train_.n(); }

  void describe(std::FILE* log, const RunShape& s) const override {
    const VitConfig& v = m_.model.cfg.vision;
    const CaptionDecoderConfig& dc = m_.model.cfg.decoder;
    std::fprintf(log,
                 "captioner: ViT %lldx%lld patch %lld dim %lld depth %lld heads %lld mlp %lld (%s) -> decoder dim "
                 "%lld depth %lld heads %lld mlp %lld (%s%s), vocabulary %lld, max %lld tokens, %lld parameters\n"
                 "data: %lld train / %lld test images; %d epochs x %lld steps of %d; %d threads\n",
                 (long long)v.image_size, (long long)v.image_size, (long long)v.patch_size, (long long)v.dim,
                 (long long)v.depth, (long long)v.heads, (long long)v.mlp_dim, v.norm_first ? "pre-norm" : "post-norm",
                 (long long)dc.dim, (long long)dc.depth, (long long)dc.heads, (long long)dc.mlp_dim,
                 dc.norm_first ? "pre-norm" : "post-norm", dc.tie_embeddings ? ", tied LM head" : "",
                 (long long)dc.vocab_size, (long long)dc.max_len, (long long)s.parameters, (long long)train_.n(),
                 (long long)test_.n(), s.epochs, (long long)s.steps_per_epoch, s.batch, s.threads);
  }

  // Each image with one of its references, chosen by (seed, epoch, image).
  void load_batch(const std::vector<int64_t>& batch, int64_t row0, int64_t rows, int epoch, int64_t) override {
    const std::vector<int64_t> idx(batch.begin() + row0, batch.begin() + row0 + rows);
    if (n_ != rows) {
      const VitConfig& v = m_.model.cfg.vision;
      x_ = Tensor::empty(Shape{rows, v.channels, v.image_size, v.image_size});
      n_ = rows;
    }
    // References of the whole batch (a rank pads its rows to the batch's longest).
    std::vector<const std::vector<int32_t>*> words;
    int64_t longest = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& refs = train_words_[size_t(batch[i])];
      uint64_t pick = mix64(o_.seed ^ mix64(uint64_t(epoch) * 0x100000001ull + uint64_t(batch[i])));
      const auto* w = &refs[size_t(pick % refs.size())];
      longest = std::max<int64_t>(longest, int64_t(w->size()) + 1);
      if (int64_t(i) >= row0 && int64_t(i) < row0 + rows) words.push_back(w);
    }
    seq_ = make_caption_batch(words, m_.model.cfg.decoder, longest);
    caption_input(m_.model, train_, idx.data(), n_, x_.f32());
  }

  StepOutput forward(Graph& g, int, int64_t) override {
    const int64_t V = m_.model.cfg.decoder.vocab_size;
    Var mem = captioner_encode(g, m_.model, g.constant(x_));
    Var logits = caption_decoder_forward(g, m_.model.decoder, seq_.ids, mem);
    Var flat = ag::reshape(g, logits, Shape{n_ * seq_.T, V});
    StepOutput out;
    out.loss = ag::cross_entropy(g, flat, seq_.targets, o_.label_smoothing);
    out.weight = double(seq_.tokens);
    out.metric = double(count_correct_words(g.data(flat), seq_.targets.ptr<int32_t>(), n_ * seq_.T, V));
    return out;
  }

  nlohmann::json end_epoch(const EpochStats& s, std::FILE* log) override {
    const CaptionLossAcc te = teacher_forced_loss(m_.model, test_, test_words_, o_.label_smoothing);
    const double rate = s.seconds > 0 ? double(s.items) / s.seconds : 0;
    double f1 = NAN, bleu4 = NAN, cider = NAN;
    if (o_.val_images > 0) {
      CaptionEvalResult ev = evaluate_captions(m_.model, m_.vocab, test_, GenerateOptions{}, o_.val_images);
      bleu4 = ev.bleu.bleu[3];
      cider = ev.cider_d;
      if (ev.has_objects) f1 = ev.objects.f1;
    }
    std::fprintf(log,
                 "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | greedy on %lld test images: "
                 "object F1 %.4f BLEU-4 %.4f CIDEr-D %.3f | %.1f s, %.0f img/s\n",
                 s.epoch, s.epochs, s.train_loss, s.train_metric, te.loss, te.acc,
                 (long long)std::min(o_.val_images, test_.n()), f1, bleu4, cider, s.seconds, rate);
    return {{"epoch", s.epoch},      {"train_loss", s.train_loss}, {"train_acc", s.train_metric},
            {"test_loss", te.loss},  {"test_acc", te.acc},         {"val_object_f1", num(f1)},
            {"val_bleu4", num(bleu4)}, {"val_cider_d", num(cider)}, {"seconds", s.seconds},
            {"images_per_s", rate}};
  }

  EpochPoint curve_point(const nlohmann::json& r) const override {
    return {r.at("epoch"), r.at("train_loss"), r.at("test_loss"), r.at("train_acc"), r.at("test_acc")};
  }
  std::string curve_title() const override { return "Captioner on " + o_.data_dir; }

  std::string config_json() const override { return m_.model.cfg.to_json(); }
  void checkpoint_metadata(std::map<std::string, std::string>* meta) const override {
    (*meta)["vocab"] = m_.vocab.to_json();
  }
  void save_model(const std::string& path) override {
    io::save_parameters(path, m_.model.parameters(),
                        {{"config", m_.model.cfg.to_json()}, {"vocab", m_.vocab.to_json()}, {"format", "mmkit.captioner.v1"}});
  }
  nlohmann::json options_json() const override {
    return {{"data", o_.data_dir}, {"label_smoothing", o_.label_smoothing}};
  }

 private:
  // The vocabulary, sizes and pixel statistics of a new model, from the training data.
  void config_from_data(CaptionerConfig* cfg, int64_t channels) {
    std::vector<std::string> all;
    for (auto& e : train_.examples) all.insert(all.end(), e.captions.begin(), e.captions.end());
    m_.vocab = text::CaptionVocab::build(all);
    cfg->vision.image_size = train_.size;
    cfg->vision.channels = channels;
    cfg->vision.num_classes = 0;
    cfg->decoder.vocab_size = m_.vocab.size();
    cfg->decoder.pad_id = text::CaptionVocab::kPad;
    cfg->decoder.bos_id = text::CaptionVocab::kBos;
    cfg->decoder.eos_id = text::CaptionVocab::kEos;
    if (cfg->decoder.max_len <= 0) {
      size_t longest = 0;
      for (auto& c : all) longest = std::max(longest, text::CaptionVocab::split_words(c).size());
      cfg->decoder.max_len = int64_t(longest) + 2;  // BOS + words + EOS
    }
    if (cfg->vision.pixel_mean.empty()) {  // per-channel statistics of the training images
      std::vector<double> sum(static_cast<size_t>(channels)), sq(static_cast<size_t>(channels));
      for (size_t i = 0; i < train_.pixels.size(); ++i) {
        double p = train_.pixels[i] / 255.0;
        sum[i % size_t(channels)] += p;
        sq[i % size_t(channels)] += p * p;
      }
      const double n = double(train_.pixels.size() / size_t(channels));
      for (int64_t c = 0; c < channels; ++c) {
        double mean = sum[size_t(c)] / n;
        cfg->vision.pixel_mean.push_back(float(mean));
        cfg->vision.pixel_std.push_back(float(std::sqrt(std::max(1e-8, sq[size_t(c)] / n - mean * mean))));
      }
    }
  }

  const CaptionTrainOptions& o_;
  data::CaptionData train_, test_;
  std::vector<std::vector<std::vector<int32_t>>> train_words_, test_words_;
  CaptionModel m_;
  Tensor x_;            // the batch's images [B, C, S, S]
  CaptionBatch seq_;    // its teacher-forcing sequences
  int64_t n_ = 0;
};

}  // namespace

std::vector<CaptionEpochRecord> train_captioner(const CaptionTrainOptions& o, std::FILE* log) {
  CaptionTask task(o);
  return typed_history(run_training(task, o, log), record_from_json);
}

}  // namespace mmkit::train
