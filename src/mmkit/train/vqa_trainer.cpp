#include "mmkit/train/vqa_trainer.h"

#include <algorithm>

#include "mmkit/autograd/functions.h"
#include "mmkit/data/vqa_dataset.h"
#include "mmkit/eval/vqa_eval.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/train_loop.h"

namespace mmkit::train {

namespace {

VqaEpochRecord record_from_json(const nlohmann::json& r) {
  VqaEpochRecord e;
  e.epoch = r.at("epoch");
  e.train_loss = r.at("train_loss");
  e.train_acc = r.at("train_acc");
  e.test_loss = r.at("test_loss");
  e.test_acc = r.at("test_acc");
  e.test_acc_relational = r.at("test_acc_relational");
  e.test_acc_non_relational = r.at("test_acc_non_relational");
  e.seconds = r.at("seconds");
  e.questions_per_s = r.value("questions_per_s", 0.0);
  return e;
}

class VqaTask : public TrainTask {
 public:
  explicit VqaTask(const VqaTrainOptions& o) : o_(o) {
    MMKIT_CHECK(!o.data_dir.empty(), "no data directory given (--data DIR with train.jsonl and test.jsonl)");
  }

  Info info() const override {
    Info i;
    i.name = "VQA";
    i.format = "mmkit.vqa.checkpoint.v1";
    i.batch_flag = "--images-per-batch";
    i.max_batch = 4096;
    i.metric_field = "acc_sum";
    return i;
  }

  void setup(const io::SafetensorsFile* resume, std::FILE*) override {
    train_ = data::load_vqa_dataset(o_.data_dir + "/train.jsonl", o_.limit_train, true);
    test_ = data::load_vqa_dataset(o_.data_dir + "/test.jsonl", o_.limit_test, true);
    VqaConfig cfg = o_.model;
    if (resume) {
      cfg = VqaConfig::from_json(resume->metadata().at("config"));
    } else {
      std::vector<std::string> qs;
      for (auto& e : train_.examples) qs.push_back(e.question);
      cfg.vocab = text::WordTokenizer::build(qs).vocab();
      cfg.answers = AnswerVocab::build(train_.examples, o_.top_k_answers).answers();
      int64_t longest = 0;
      for (auto& q : qs) longest = std::max<int64_t>(longest, int64_t(text::WordTokenizer::words(q).size()) + 1);
      cfg.max_question_len = std::max(cfg.max_question_len, longest);
    }
    m_.init(cfg, o_.seed);
    answers_ = std::make_unique<AnswerVocab>(cfg.answers);
    batches_ = std::make_unique<VqaBatchBuilder>(m_, train_, *answers_);
  }

  nn::ParamList parameters() override { return m_.parameters(); }
  int64_t train_size() const override { return int64_t(train_.images.size()); }
  int64_t default_warmup(int64_t steps_per_epoch) const override { return steps_per_epoch / 2; }

  void describe(std::FILE* log, const RunShape& s) const override {
    const VqaConfig& c = m_.cfg;
    int64_t unanswerable = 0;
    std::vector<float> row(static_cast<size_t>(answers_->size()));
    for (auto& e : train_.examples) unanswerable += answers_->soft_scores(e.answers, row.data()) <= 0.f;
    std::fprintf(log,
                 "VQA: %lldx%lld images, patch %lld (stem %lld), %lld tokens; dim %lld, heads %lld, mlp %lld; "
                 "layers image %lld, text %lld, fusion %lld (%s)%s; %zu words, %zu answers; %lld parameters\n"
                 "data: %lld train images (%zu questions, %lld without an in-vocabulary answer), %lld test images "
                 "(%zu questions); %d epochs x %lld steps of %d images; %d threads\n",
                 (long long)c.image_size, (long long)c.image_size, (long long)c.patch_size, (long long)c.stem_patch,
                 (long long)c.num_patches(), (long long)c.dim, (long long)c.heads, (long long)c.mlp_dim,
                 (long long)c.image_layers, (long long)c.text_layers, (long long)c.fusion_layers,
                 c.norm_first ? "pre-norm" : "post-norm", c.film ? ", FiLM stem" : "", c.vocab.size() - 2,
                 c.answers.size(), (long long)s.parameters, (long long)train_.images.size(), train_.examples.size(),
                 (long long)unanswerable, (long long)test_.images.size(), test_.examples.size(), s.epochs,
                 (long long)s.steps_per_epoch, s.batch, s.threads);
  }

  void load_batch(const std::vector<int64_t>& batch, int64_t row0, int64_t rows, int epoch, int64_t) override {
    const std::vector<int64_t> images(batch.begin() + row0, batch.begin() + row0 + rows);
    ex_ = batches_->build(images, /*drop_unanswerable=*/true, &batch_, &targets_, epoch < o_.non_relational_epochs);
  }

  // Soft cross-entropy over the batch's questions; a batch left without
  // questions (curriculum, unanswerable) is a step without an update.
  StepOutput forward(Graph& g, int, int64_t) override {
    StepOutput out;
    if (ex_.empty()) return out;
    Var logits = vqa_forward(g, m_, batch_);
    out.loss = ag::soft_cross_entropy(g, logits, targets_);
    out.weight = double(ex_.size());
    const float* L = g.data(logits);
    const int64_t K = answers_->size();
    for (size_t q = 0; q < ex_.size(); ++q)
      out.metric += vqa_accuracy(answers_->answers()[size_t(argmax_row(L + int64_t(q) * K, K))],
                                 train_.examples[size_t(ex_[q])].answers);
    return out;
  }

  nlohmann::json end_epoch(const EpochStats& s, std::FILE* log) override {
    VqaEvalResult ev = evaluate_vqa(m_, test_, 16);
    const double rate = s.seconds > 0 ? s.weight / s.seconds : 0;
    std::fprintf(log,
                 "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f (non-relational %.4f, relational "
                 "%.4f) | %.1f s, %.0f questions/s\n",
                 s.epoch, s.epochs, s.train_loss, s.train_metric, ev.loss, ev.accuracy, ev.non_relational.accuracy,
                 ev.relational.accuracy, s.seconds, rate);
    return {{"epoch", s.epoch},
            {"train_loss", s.train_loss},
            {"train_acc", s.train_metric},
            {"test_loss", ev.loss},
            {"test_acc", ev.accuracy},
            {"test_acc_relational", ev.relational.accuracy},
            {"test_acc_non_relational", ev.non_relational.accuracy},
            {"seconds", s.seconds},
            {"questions_per_s", rate}};
  }

  EpochPoint curve_point(const nlohmann::json& r) const override {
    return {r.at("epoch"), r.at("train_loss"), r.at("test_loss"), r.at("train_acc"), r.at("test_acc")};
  }
  std::string curve_title() const override { return "VQA (co-attention fusion)"; }

  std::string config_json() const override { return m_.cfg.to_json(); }
  void save_model(const std::string& path) override {
    io::save_parameters(path, m_.parameters(), {{"config", m_.cfg.to_json()}, {"format", "mmkit.vqa.v1"}});
  }
  nlohmann::json options_json() const override {
    return {{"top_k_answers", o_.top_k_answers}, {"non_relational_epochs", o_.non_relational_epochs}};
  }

 private:
  const VqaTrainOptions& o_;
  data::VqaDataset train_, test_;
  Vqa m_;
  std::unique_ptr<AnswerVocab> answers_;
  std::unique_ptr<VqaBatchBuilder> batches_;
  VqaBatch batch_;             // the step's images, questions and their image rows
  Tensor targets_;             // [Bq, K] soft answer scores, rows summing to 1
  std::vector<int64_t> ex_;    // the batch's example indices
};

}  // namespace

std::vector<VqaEpochRecord> train_vqa(const VqaTrainOptions& o, std::FILE* log) {
  VqaTask task(o);
  return typed_history(run_training(task, o, log), record_from_json);
}

}  // namespace mmkit::train
