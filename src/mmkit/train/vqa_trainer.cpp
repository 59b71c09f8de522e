#include "mmkit/train/vqa_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "mmkit/autograd/functions.h"
#include "mmkit/data/vqa_dataset.h"
#include "mmkit/eval/vqa_eval.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/train_loop.h"

namespace mmkit::train {

namespace {

VqaEpochRecord record_from_json(const nlohmann::json& r) {
  const double none = std::nan("");
  VqaEpochRecord e;
  e.epoch = r.at("epoch");
  e.train_loss = r.at("train_loss");
  e.train_acc = r.at("train_acc");
  e.val_loss = r.value("val_loss", none);
  e.val_acc = r.value("val_acc", none);
  e.val_acc_relational = r.value("val_acc_relational", none);
  e.val_acc_non_relational = r.value("val_acc_non_relational", none);
  e.test_loss = r.value("test_loss", none);
  e.test_acc = r.value("test_acc", none);
  e.test_acc_relational = r.value("test_acc_relational", none);
  e.test_acc_non_relational = r.value("test_acc_non_relational", none);
  e.selected_epoch = r.value("selected_epoch", 0);
  e.seconds = r.at("seconds");
  e.questions_per_s = r.value("questions_per_s", 0.0);
  return e;
}

// An evaluation as history fields: prefix_{loss,acc,acc_relational,acc_non_relational} and
// prefix_per_type {type: accuracy} (the per-type curves that show which skill stalls).
void add_eval(nlohmann::json* rec, const std::string& prefix, const VqaEvalResult& ev) {
  (*rec)[prefix + "_loss"] = ev.loss;
  (*rec)[prefix + "_acc"] = ev.accuracy;
  (*rec)[prefix + "_acc_relational"] = ev.relational.accuracy;
  (*rec)[prefix + "_acc_non_relational"] = ev.non_relational.accuracy;
  nlohmann::json types = nlohmann::json::object();
  for (auto& [t, v] : ev.per_type) types[t.empty() ? "untyped" : t] = v.accuracy;
  (*rec)[prefix + "_per_type"] = types;
}

// The parameters' values as copies (the selected epoch's weights), and copies written back in place
// (memcpy into the existing buffers, so nothing that points at them goes stale).
std::vector<Tensor> clone_values(const nn::ParamList& ps) {
  std::vector<Tensor> v;
  for (const Parameter* p : ps) v.push_back(p->value.clone());
  return v;
}
void copy_values_into(const nn::ParamList& ps, const std::vector<Tensor>& v) {
  for (size_t i = 0; i < ps.size(); ++i) std::memcpy(ps[i]->value.raw(), v[i].raw(), v[i].nbytes());
}

std::string per_type_line(const VqaEvalResult& ev) {
  std::string s;
  char buf[64];
  for (auto& [t, v] : ev.per_type) {
    std::snprintf(buf, sizeof buf, "%s%s %.3f", s.empty() ? "" : ", ", t.empty() ? "untyped" : t.c_str(), v.accuracy);
    s += buf;
  }
  return s;
}

class VqaTask : public TrainTask {
 public:
  explicit VqaTask(const VqaTrainOptions& o) : o_(o), files_(data_files(o.data_dir, o.test_data)) {}

  Info info() const override {
    Info i;
    i.name = "VQA";
    i.format = "mmkit.vqa.checkpoint.v1";
    i.batch_flag = "--batch";
    i.max_batch = 4096;
    i.metric_field = "acc_sum";
    return i;
  }

  void setup(const io::SafetensorsFile* resume, std::FILE*) override {
    train_ = data::load_vqa_dataset(files_.train, o_.limit_train, true);
    const int64_t n = int64_t(train_.images.size());
    const int64_t n_val = o_.val_images >= 0 ? o_.val_images : (n >= 2 ? std::max<int64_t>(1, (n + 10) / 20) : 0);
    val_ = data::split_off_images(train_, n_val);
    test_ = data::load_vqa_dataset(files_.test, o_.limit_test, true);
    VqaConfig cfg = o_.model;
    if (resume) {
      cfg = VqaConfig::from_json(resume->metadata().at("config"));
    } else {
      std::vector<std::string> qs;
      for (auto& e : train_.examples) qs.push_back(e.question);
      for (auto& e : val_.examples) qs.push_back(e.question);  // words only: the answers come from train_
      cfg.vocab = text::WordTokenizer::build(qs).vocab();
      cfg.answers = AnswerVocab::build(train_.examples, o_.top_k_answers).answers();
      int64_t longest = 0;
      for (auto& q : qs) longest = std::max<int64_t>(longest, int64_t(text::WordTokenizer::words(q).size()) + 1);
      cfg.max_question_len = std::max(cfg.max_question_len, longest);
    }
    m_.init(cfg, o_.seed);
    if (resume && best_epoch_ > 0) {
      // The selected weights live in model.safetensors (save_model), not in the checkpoint.
      Vqa best;
      best.init(cfg, 0);
      io::load_parameters(io::SafetensorsFile::open(o_.out_dir + "/model.safetensors"), best.parameters(), {});
      best_ = clone_values(best.parameters());
    }
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
                 "data: %lld train images (%zu questions, %lld without an in-vocabulary answer), %lld validation "
                 "images (%zu questions), %lld test images (%zu questions); epochs: %d x %lld steps of %d images; "
                 "threads: %d\n",
                 (long long)c.image_size, (long long)c.image_size, (long long)c.patch_size, (long long)c.stem_patch,
                 (long long)c.num_patches(), (long long)c.dim, (long long)c.heads, (long long)c.mlp_dim,
                 (long long)c.image_layers, (long long)c.text_layers, (long long)c.fusion_layers,
                 c.norm_first ? "pre-norm" : "post-norm", c.film ? ", FiLM stem" : "", c.vocab.size() - 2,
                 c.answers.size(), (long long)s.parameters, (long long)train_.images.size(), train_.examples.size(),
                 (long long)unanswerable, (long long)val_.images.size(), val_.examples.size(),
                 (long long)test_.images.size(), test_.examples.size(), s.epochs,
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
    const double rate = s.seconds > 0 ? s.weight / s.seconds : 0;
    nlohmann::json rec = {{"epoch", s.epoch},
                          {"train_loss", s.train_loss},
                          {"train_acc", s.train_metric},
                          {"seconds", s.seconds},
                          {"questions_per_s", rate}};
    if (val_.images.empty()) {  // no validation split: the test split every epoch, the last epoch selected
      VqaEvalResult ev = evaluate_vqa(m_, test_, 16);
      add_eval(&rec, "test", ev);
      std::fprintf(log,
                   "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f (non-relational %.4f, "
                   "relational %.4f) | %.1f s, %.0f questions/s\n  test per type: %s\n",
                   s.epoch, s.epochs, s.train_loss, s.train_metric, ev.loss, ev.accuracy, ev.non_relational.accuracy,
                   ev.relational.accuracy, s.seconds, rate, per_type_line(ev).c_str());
      if (s.epoch == s.epochs) rec["selected_epoch"] = s.epoch;
      return rec;
    }
    VqaEvalResult ev = evaluate_vqa(m_, val_, 16);
    add_eval(&rec, "val", ev);
    const bool better = ev.accuracy >= best_val_;
    if (better) {
      best_val_ = ev.accuracy;
      best_epoch_ = s.epoch;
      best_ = clone_values(m_.parameters());
    }
    std::fprintf(log,
                 "epoch %d/%d: train loss %.4f acc %.4f | validation loss %.4f acc %.4f (non-relational %.4f, "
                 "relational %.4f)%s | %.1f s, %.0f questions/s\n  validation per type: %s\n",
                 s.epoch, s.epochs, s.train_loss, s.train_metric, ev.loss, ev.accuracy, ev.non_relational.accuracy,
                 ev.relational.accuracy, better ? " best so far" : "", s.seconds, rate, per_type_line(ev).c_str());
    if (s.epoch == s.epochs) {
      // The final numbers: the test split, once, with the selected weights.
      const nn::ParamList ps = m_.parameters();
      const std::vector<Tensor> now = clone_values(ps);
      copy_values_into(ps, best_);
      VqaEvalResult te = evaluate_vqa(m_, test_, 16);
      copy_values_into(ps, now);
      add_eval(&rec, "test", te);
      rec["selected_epoch"] = best_epoch_;
      std::fprintf(log,
                   "selected epoch %d (validation accuracy %.4f): test acc %.4f (non-relational %.4f, relational "
                   "%.4f)\n  test per type: %s\n",
                   best_epoch_, best_val_, te.accuracy, te.non_relational.accuracy, te.relational.accuracy,
                   per_type_line(te).c_str());
    }
    return rec;
  }

  EpochPoint curve_point(const nlohmann::json& r) const override {
    const char* e = r.contains("val_acc") ? "val" : "test";  // the held-out curve: validation when there is one
    return {r.at("epoch"), r.at("train_loss"), r.at(std::string(e) + "_loss"), r.at("train_acc"),
            r.at(std::string(e) + "_acc")};
  }
  std::string curve_title() const override {
    return val_.images.empty() ? "VQA (co-attention fusion)" : "VQA (co-attention fusion; held out: validation)";
  }

  std::string config_json() const override { return m_.cfg.to_json(); }
  // The selected weights (best validation accuracy so far) once an epoch has been evaluated.
  void save_model(const std::string& path) override {
    nn::ParamList ps = m_.parameters();
    std::vector<Parameter> best(best_.size());
    if (!best_.empty())
      for (size_t i = 0; i < ps.size(); ++i) {
        best[i].name = ps[i]->name;
        best[i].value = best_[i];
        ps[i] = &best[i];
      }
    io::save_parameters(path, ps, {{"config", m_.cfg.to_json()}, {"format", "mmkit.vqa.v1"}});
  }
  nlohmann::json options_json() const override {
    return {{"top_k_answers", o_.top_k_answers},
            {"non_relational_epochs", o_.non_relational_epochs},
            {"val_images", o_.val_images}};
  }
  void save_state(nlohmann::json* st) const override {
    (*st)["best_epoch"] = best_epoch_;
    (*st)["best_val_acc"] = best_val_;
  }
  void load_state(const TrainStateReader& r) override {
    best_epoch_ = r.get<int>("best_epoch", 0);
    best_val_ = r.get<double>("best_val_acc", -1.0);
  }

 private:
  const VqaTrainOptions& o_;
  const DataFiles files_;
  data::VqaDataset train_, val_, test_;
  std::vector<Tensor> best_;  // the selected weights, aligned with m_.parameters() (empty: none yet)
  int best_epoch_ = 0;
  double best_val_ = -1;
  Vqa m_;
  std::unique_ptr<AnswerVocab> answers_;
  std::unique_ptr<VqaBatchBuilder> batches_;
  VqaBatch batch_;             // the step's images, questions and their image rows
  Tensor targets_;             // [Bq, K] soft answer scores, rows summing to 1
  std::vector<int64_t> ex_;    // the batch's example indices
};

}  // namespace

VqaTrainOptions vqa_recipe() {
  // FiLM stem, no image-only layers, one fusion layer, max-pooled image stream, a relation
  // network (width 64, 3 layers) over the fused image tokens, two-hop spatial attention (4 heads)
  // over the stem cells, 24 epochs (~69 CPU-minutes on Sort-of-CLEVR). Every layer between the
  // question and the image lengthened the plateau in the measured runs; the relation network
  // raised the relational questions from 68.7% to 77.5% (counting), the hop attention to 94.1%
  // (closest / furthest).
  VqaTrainOptions o;
  o.model.image_layers = 0;
  o.model.fusion_layers = 1;
  o.model.relation_dim = 64;
  o.model.relation_layers = 3;
  o.model.hop_heads = 4;
  o.epochs = 24;
  return o;
}

std::vector<VqaEpochRecord> train_vqa(const VqaTrainOptions& o, std::FILE* log) {
  VqaTask task(o);
  return typed_history(run_training(task, o, log), record_from_json);
}

}  // namespace mmkit::train
