#include "mmkit/train/vit_trainer.h"

#include <cmath>
#include <cstring>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/augment.h"
#include "mmkit/eval/vit_eval.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/train_loop.h"

namespace mmkit::train {

namespace {

EpochRecord record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.test_loss = j.at("test_loss");
  r.test_acc = j.at("test_acc");
  r.seconds = j.at("seconds");
  r.images_per_s = j.value("images_per_s", 0.0);
  return r;
}

class VitTask : public TrainTask {
 public:
  explicit VitTask(const VitTrainOptions& o) : o_(o) {}

  Info info() const override {
    Info i;
    i.name = "ViT";
    i.format = "mmkit.vit.checkpoint.v1";
    return i;
  }

  void setup(const io::SafetensorsFile* resume, std::FILE*) override {
    train_ = data::first_images(data::load_fashion_mnist(o_.data_dir, "train"), o_.limit_train);
    test_ = data::first_images(data::load_fashion_mnist(o_.data_dir, "test"), o_.limit_test);
    VitConfig cfg = o_.model;
    if (resume) {
      cfg = VitConfig::from_json(resume->metadata().at("config"));
    } else {
      cfg.class_names = train_.class_names;
      cfg.channels = train_.channels;
      MMKIT_CHECK(train_.rows == train_.cols, "training images must be square, got ", train_.rows, "x", train_.cols);
      cfg.image_size = train_.rows;
      cfg.num_classes = int64_t(train_.class_names.size());
      if (cfg.pixel_mean.empty()) set_pixel_stats(&cfg);
    }
    vit_.init(cfg, o_.seed);
    one_.rows = train_.rows;  // one augmented image at a time, through images_to_input
    one_.cols = train_.cols;
    one_.channels = train_.channels;
    one_.n = 1;
    one_.pixels.resize(size_t(train_.image_size()));
  }

  nn::ParamList parameters() override { return vit_.parameters(); }
  int64_t train_size() const override { return train_.n; }

  void describe(std::FILE* log, const RunShape& s) const override {
    const VitConfig& c = vit_.cfg;
    std::fprintf(log,
                 "ViT: %lldx%lld patch %lld, dim %lld, depth %lld, heads %lld, mlp %lld, %s, %lld parameters\n"
                 "data: %lld train / %lld test images; %d epochs x %lld steps of %d; %d threads\n",
                 (long long)c.image_size, (long long)c.image_size, (long long)c.patch_size, (long long)c.dim,
                 (long long)c.depth, (long long)c.heads, (long long)c.mlp_dim, c.norm_first ? "pre-norm" : "post-norm",
                 (long long)s.parameters, (long long)train_.n, (long long)test_.n, s.epochs,
                 (long long)s.steps_per_epoch, s.batch, s.threads);
  }

  void load_batch(const std::vector<int64_t>& batch, int64_t row0, int64_t rows, int, int64_t step) override {
    const int64_t C = vit_.cfg.channels, S = vit_.cfg.image_size, zero = 0;
    if (n_ != rows) {
      x_ = Tensor::empty(Shape{rows, C, S, S});
      y_ = Tensor::empty(Shape{rows}, DType::i32);
      n_ = rows;
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t k = batch[size_t(row0 + i)];
      if (o_.augment && C == 1)
        data::augment_random_crop_flip(train_.image(k), train_.rows, train_.cols, o_.aug_shift, o_.aug_flip,
                                       mix64(o_.seed ^ mix64(uint64_t(step) * 65536 + uint64_t(row0 + i))),
                                       one_.pixels.data());
      else
        std::memcpy(one_.pixels.data(), train_.image(k), one_.pixels.size());
      images_to_input(vit_, one_, &zero, 1, x_.f32() + i * C * S * S);
      y_.ptr<int32_t>()[i] = train_.labels[size_t(k)];
    }
  }

  StepOutput forward(Graph& g, int, int64_t) override {
    Var logits = vit_forward(g, vit_, g.constant(x_));
    StepOutput out;
    out.loss = ag::cross_entropy(g, logits, y_, o_.label_smoothing);
    out.weight = double(n_);
    const float* L = g.data(logits);
    const int64_t K = vit_.cfg.num_classes;
    for (int64_t i = 0; i < n_; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (L[i * K + k] > L[i * K + best]) best = k;
      out.metric += best == y_.ptr<int32_t>()[i];
    }
    return out;
  }

  nlohmann::json end_epoch(const EpochStats& s, std::FILE* log) override {
    VitEvalResult ev = evaluate_vit(vit_, test_, 500);
    const double rate = s.seconds > 0 ? double(s.items) / s.seconds : 0;
    std::fprintf(log, "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s, %.0f img/s\n",
                 s.epoch, s.epochs, s.train_loss, s.train_metric, ev.loss, ev.accuracy, s.seconds, rate);
    return {{"epoch", s.epoch},       {"train_loss", s.train_loss}, {"train_acc", s.train_metric},
            {"test_loss", ev.loss},   {"test_acc", ev.accuracy},    {"seconds", s.seconds},
            {"images_per_s", rate}};
  }

  EpochPoint curve_point(const nlohmann::json& r) const override {
    return {r.at("epoch"), r.at("train_loss"), r.at("test_loss"), r.at("train_acc"), r.at("test_acc")};
  }
  std::string curve_title() const override { return "ViT on Fashion-MNIST"; }

  std::string config_json() const override { return vit_.cfg.to_json(); }
  void save_model(const std::string& path) override {
    io::save_parameters(path, vit_.parameters(), {{"config", vit_.cfg.to_json()}, {"format", "mmkit.vit.v1"}});
  }
  nlohmann::json options_json() const override {
    return {{"label_smoothing", o_.label_smoothing}, {"augment", o_.augment}, {"aug_shift", o_.aug_shift},
            {"aug_flip", o_.aug_flip}};
  }

 private:
  // Per-channel mean and standard deviation of the training pixels.
  void set_pixel_stats(VitConfig* cfg) const {
    double sum = 0, sq = 0;
    for (uint8_t p : train_.pixels) {
      sum += p / 255.0;
      sq += (p / 255.0) * (p / 255.0);
    }
    const double n = double(train_.pixels.size()), mean = sum / n;
    cfg->pixel_mean.assign(size_t(cfg->channels), float(mean));
    cfg->pixel_std.assign(size_t(cfg->channels), float(std::sqrt(std::max(1e-8, sq / n - mean * mean))));
  }

  const VitTrainOptions& o_;
  data::ImageSet train_, test_, one_;
  Vit vit_;
  Tensor x_, y_;  // the batch: [B, C, S, S] normalised pixels, I32 [B] labels
  int64_t n_ = 0;
};

}  // namespace

std::vector<EpochRecord> train_vit(const VitTrainOptions& o, std::FILE* log) {
  VitTask task(o);
  return typed_history(run_training(task, o, log), record_from_json);
}

}  // namespace mmkit::train
