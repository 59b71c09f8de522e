#include "mmkit/train/vqa_trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/batcher.h"
#include "mmkit/eval/plots.h"
#include "mmkit/eval/vqa_accuracy.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/util/stop_signal.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::train {

VqaDataset load_vqa_dataset(const std::string& jsonl, int64_t limit_images, bool show_progress) {
  VqaDataset d;
  std::vector<data::VqaExample> all = data::read_vqa_jsonl(jsonl);
  data::ImageIndex idx = data::index_images(all);
  const int64_t n_img = limit_images > 0 ? std::min<int64_t>(limit_images, int64_t(idx.images.size()))
                                         : int64_t(idx.images.size());
  d.image_paths.assign(idx.images.begin(), idx.images.begin() + n_img);
  d.questions_of.resize(size_t(n_img));
  for (size_t e = 0; e < all.size(); ++e) {
    const int32_t k = idx.of_example[e];
    if (k >= n_img) continue;
    d.questions_of[size_t(k)].push_back(int64_t(d.examples.size()));
    d.examples.push_back(std::move(all[e]));
  }
  // Decode every image once, in parallel; the first failure (by index) is reported.
  d.images.resize(size_t(n_img));
  std::vector<std::string> errors(static_cast<size_t>(n_img));
  ProgressOptions po;
  po.unit = "img/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("decode " + jsonl, n_img, stderr, po);
  const int64_t chunk = 256;
  for (int64_t i0 = 0; i0 < n_img; i0 += chunk) {
    const int64_t i1 = std::min(n_img, i0 + chunk);
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = i0; i < i1; ++i) {
      try {
        d.images[size_t(i)] = decode_image_file(d.image_paths[size_t(i)]);
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    }
    for (int64_t i = i0; i < i1; ++i)
      if (!errors[size_t(i)].empty())
        fail(jsonl, ": image ", d.image_paths[size_t(i)], " cannot be used: ", errors[size_t(i)]);
    bar.update(i1);
  }
  bar.finish();
  return d;
}

namespace {

// Builds the inputs for a group of images and all their questions.
// Questions with no in-vocabulary answer are skipped when `drop_unanswerable`.
struct BatchBuilder {
  const Vqa& m;
  const VqaDataset& d;
  const AnswerVocab& answers;
  std::vector<std::vector<int32_t>> token_cache;  // per example, filled lazily

  BatchBuilder(const Vqa& model, const VqaDataset& data, const AnswerVocab& av)
      : m(model), d(data), answers(av), token_cache(data.examples.size()) {}

  // Returns the example indices in batch order.
  std::vector<int64_t> build(const std::vector<int64_t>& image_ids, bool drop_unanswerable, VqaBatch* b,
                             Tensor* targets, bool skip_relational = false) {
    const VqaConfig& c = m.cfg;
    const int64_t S = c.image_size, C = c.input_channels(), K = answers.size();
    std::vector<int64_t> ex;
    std::vector<int32_t> img_of;
    std::vector<float> row(static_cast<size_t>(K));
    for (size_t i = 0; i < image_ids.size(); ++i)
      for (int64_t e : d.questions_of[size_t(image_ids[i])]) {
        if (drop_unanswerable && answers.soft_scores(d.examples[size_t(e)].answers, row.data()) <= 0.f) continue;
        if (skip_relational && d.examples[size_t(e)].relational) continue;
        ex.push_back(e);
        img_of.push_back(int32_t(i));
      }
    const int64_t Bi = int64_t(image_ids.size()), Bq = int64_t(ex.size());
    b->images = Tensor::empty(Shape{Bi, C, S, S});
    for (int64_t i = 0; i < Bi; ++i)
      vqa_image_to_input(c, d.images[size_t(image_ids[size_t(i)])], b->images.f32() + i * C * S * S);
    size_t T = 1;
    for (int64_t e : ex) {
      auto& ids = token_cache[size_t(e)];
      if (ids.empty()) ids = m.tokenizer.encode(d.examples[size_t(e)].question, c.max_question_len);
      T = std::max(T, ids.size());
    }
    b->tokens = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::i32);
    b->pad = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::u8);
    b->image_index = Tensor::empty(Shape{Bq}, DType::i32);
    *targets = Tensor::zeros(Shape{Bq, K});
    for (int64_t q = 0; q < Bq; ++q) {
      const auto& ids = token_cache[size_t(ex[size_t(q)])];
      for (size_t t = 0; t < T; ++t) {
        b->tokens.ptr<int32_t>()[q * int64_t(T) + int64_t(t)] = t < ids.size() ? ids[t] : text::WordTokenizer::kPad;
        b->pad.ptr<uint8_t>()[q * int64_t(T) + int64_t(t)] = t < ids.size() ? 0 : 1;
      }
      b->image_index.ptr<int32_t>()[q] = img_of[size_t(q)];
      float* tr = targets->f32() + q * K;
      float sum = answers.soft_scores(d.examples[size_t(ex[size_t(q)])].answers, tr);
      if (sum > 0)
        for (int64_t k = 0; k < K; ++k) tr[k] /= sum;
    }
    return ex;
  }
};

int64_t argmax(const float* x, int64_t K) {
  int64_t best = 0;
  for (int64_t k = 1; k < K; ++k)
    if (x[k] > x[best]) best = k;
  return best;
}

// The run position and the running sums over the epoch so far.
struct TrainState : RunPosition<VqaEpochRecord> {
  double loss_sum = 0, acc_sum = 0;
  int64_t seen = 0;
};

nlohmann::json record_json(const VqaEpochRecord& r) {
  return {{"epoch", r.epoch},
          {"train_loss", r.train_loss},
          {"train_acc", r.train_acc},
          {"test_loss", r.test_loss},
          {"test_acc", r.test_acc},
          {"test_acc_relational", r.test_acc_relational},
          {"test_acc_non_relational", r.test_acc_non_relational},
          {"seconds", r.seconds},
          {"questions_per_s", r.questions_per_s}};
}

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

std::string state_json(const TrainState& s, const VqaTrainOptions& o) {
  nlohmann::json j = run_position_json(s, record_json);
  j["loss_sum"] = s.loss_sum;
  j["acc_sum"] = s.acc_sum;
  j["seen"] = s.seen;
  j["options"] = {{"epochs", o.epochs}, {"images_per_batch", o.images_per_batch}, {"lr", o.lr},
                  {"min_lr", o.min_lr}, {"weight_decay", o.weight_decay},         {"clip_grad", o.clip_grad},
                  {"seed", o.seed},     {"top_k_answers", o.top_k_answers},       {"limit_train", o.limit_train},
                  {"non_relational_epochs", o.non_relational_epochs}};
  return j.dump();
}

TrainState state_from_json(const std::string& text, const std::string& path) {
  TrainStateReader j(text, path);
  TrainState s;
  j.read_position(&s, record_from_json);
  s.loss_sum = j.get<double>("loss_sum");
  s.acc_sum = j.get<double>("acc_sum");
  s.seen = j.get<int64_t>("seen");
  return s;
}

void save_checkpoint(const std::string& dir, Vqa& m, AdamW& opt, const TrainState& st, const VqaTrainOptions& o) {
  const auto& ps = opt.params();
  std::vector<io::NamedTensor> extra = optimizer_tensors(opt);
  io::save_parameters(dir + "/checkpoint.safetensors", ps,
                      {{"config", m.cfg.to_json()}, {"train_state", state_json(st, o)},
                       {"format", "mmkit.vqa.checkpoint.v1"}},
                      extra);
  io::save_parameters(dir + "/model.safetensors", ps, {{"config", m.cfg.to_json()}, {"format", "mmkit.vqa.v1"}});
}

EpochPoint curve_point(const VqaEpochRecord& r) {
  return {r.epoch, r.train_loss, r.test_loss, r.train_acc, r.test_acc};
}

}  // namespace

int last_vqa_stop_signal() { return stop_signal(); }

VqaEvalResult evaluate_vqa(Vqa& m, const VqaDataset& d, int images_per_batch, bool show_progress) {
  auto t0 = std::chrono::steady_clock::now();
  AnswerVocab av(m.cfg.answers);
  BatchBuilder bb(m, d, av);
  VqaEvalResult r;
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  ProgressOptions po;
  po.unit = "q/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("eval", int64_t(d.examples.size()), stderr, po);
  const int64_t n_img = int64_t(d.images.size()), K = av.size();
  double loss_sum = 0;
  int64_t loss_n = 0;
  std::map<std::string, std::pair<int64_t, double>> per_type;
  std::pair<int64_t, double> rel{0, 0}, nonrel{0, 0};
  double acc_sum = 0;
  VqaBatch b;
  Tensor targets;
  for (int64_t i0 = 0; i0 < n_img; i0 += images_per_batch) {
    std::vector<int64_t> ids;
    for (int64_t i = i0; i < std::min(n_img, i0 + images_per_batch); ++i) ids.push_back(i);
    std::vector<int64_t> ex = bb.build(ids, false, &b, &targets);
    if (ex.empty()) continue;
    g.reset();
    Var logits = vqa_forward(g, m, b);
    const float* L = g.data(logits);
    for (size_t q = 0; q < ex.size(); ++q) {
      const auto& e = d.examples[size_t(ex[q])];
      const float acc = vqa_accuracy(av.answers()[size_t(argmax(L + int64_t(q) * K, K))], e.answers);
      acc_sum += acc;
      auto& pt = per_type[e.type];
      pt.first++;
      pt.second += acc;
      auto& rr = e.relational ? rel : nonrel;
      rr.first++;
      rr.second += acc;
      // Loss over questions with in-vocabulary answers (their target rows sum to 1).
      const float* t = targets.f32() + int64_t(q) * K;
      double tsum = 0, l = 0, mx = L[int64_t(q) * K];
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(L[int64_t(q) * K + k]));
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += std::exp(double(L[int64_t(q) * K + k]) - mx);
      for (int64_t k = 0; k < K; ++k) {
        tsum += t[k];
        if (t[k] > 0) l += t[k] * (mx + std::log(s) - L[int64_t(q) * K + k]);
      }
      if (tsum > 0) {
        loss_sum += l;
        ++loss_n;
      }
    }
    r.n += int64_t(ex.size());
    bar.update(r.n);
  }
  bar.finish();
  r.accuracy = r.n ? acc_sum / double(r.n) : 0;
  r.loss = loss_n ? loss_sum / double(loss_n) : 0;
  for (auto& [t, v] : per_type) r.per_type[t] = {v.first, v.first ? v.second / double(v.first) : 0};
  r.relational = {rel.first, rel.first ? rel.second / double(rel.first) : 0};
  r.non_relational = {nonrel.first, nonrel.first ? nonrel.second / double(nonrel.first) : 0};
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<VqaEpochRecord> train_vqa(const VqaTrainOptions& o, std::FILE* log) {
  MMKIT_CHECK(!o.data_dir.empty(), "no data directory given (--data DIR with train.jsonl and test.jsonl)");
  MMKIT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  MMKIT_CHECK(o.images_per_batch > 0 && o.images_per_batch <= 4096, "--images-per-batch must be in 1..4096, got ",
              o.images_per_batch);
  MMKIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number");
  set_num_threads(o.threads);
  make_dirs(o.out_dir);
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  if (!o.resume && path_exists(ckpt))
    fail(o.out_dir, " already holds a training run (checkpoint.safetensors); pass --resume to continue it or choose another --out");

  VqaDataset train = load_vqa_dataset(o.data_dir + "/train.jsonl", o.limit_train, true);
  VqaDataset test = load_vqa_dataset(o.data_dir + "/test.jsonl", o.limit_test, true);

  TrainState st;
  const bool resumed = o.resume && path_exists(ckpt);
  std::unique_ptr<io::SafetensorsFile> ck;
  VqaConfig cfg = o.model;
  if (resumed) {
    ck = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ckpt));
    auto meta = ck->metadata();
    MMKIT_CHECK(meta.count("config") && meta.count("train_state"), ckpt,
                ": missing config/train_state metadata; not an mmkit VQA training checkpoint");
    cfg = VqaConfig::from_json(meta["config"]);
    st = state_from_json(meta["train_state"], ckpt);
  } else {
    std::vector<std::string> qs;
    for (auto& e : train.examples) qs.push_back(e.question);
    cfg.vocab = text::WordTokenizer::build(qs).vocab();
    cfg.answers = AnswerVocab::build(train.examples, o.top_k_answers).answers();
    int64_t longest = 0;
    for (auto& q : qs) longest = std::max<int64_t>(longest, int64_t(text::WordTokenizer::words(q).size()) + 1);
    cfg.max_question_len = std::max(cfg.max_question_len, longest);
  }
  Vqa m;
  m.init(cfg, o.seed);
  nn::ParamList params = m.parameters();
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  AdamW opt(params, ac);
  if (resumed) {
    resume_from_checkpoint(*ck, params, opt, st.step);
    ck.reset();
    std::fprintf(log, "resuming %s at epoch %d, step %lld\n", o.out_dir.c_str(), st.epoch + 1, (long long)st.step);
  }

  AnswerVocab av(cfg.answers);
  BatchBuilder bb(m, train, av);
  int64_t unanswerable = 0;
  {
    std::vector<float> row(static_cast<size_t>(av.size()));
    for (auto& e : train.examples) unanswerable += av.soft_scores(e.answers, row.data()) <= 0.f;
  }
  const int64_t n_img = int64_t(train.images.size());
  data::Batcher batcher(n_img, o.images_per_batch, o.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t steps_per_epoch = batcher.batches_per_epoch();
  MMKIT_CHECK(steps_per_epoch > 0, "training set of ", n_img, " images is smaller than one batch of ",
              o.images_per_batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : steps_per_epoch / 2;
  {
    int64_t n_params = 0;
    for (Parameter* p : params) n_params += p->value.numel();
    std::fprintf(log,
                 "VQA: %lldx%lld images, patch %lld (stem %lld), %lld tokens; dim %lld, heads %lld, mlp %lld; "
                 "layers image %lld, text %lld, fusion %lld (%s)%s; %zu words, %zu answers; %lld parameters\n"
                 "data: %lld train images (%zu questions, %lld without an in-vocabulary answer), %lld test images "
                 "(%zu questions); %d epochs x %lld steps of %d images; %d threads\n",
                 (long long)cfg.image_size, (long long)cfg.image_size, (long long)cfg.patch_size,
                 (long long)cfg.stem_patch, (long long)cfg.num_patches(), (long long)cfg.dim, (long long)cfg.heads,
                 (long long)cfg.mlp_dim, (long long)cfg.image_layers, (long long)cfg.text_layers,
                 (long long)cfg.fusion_layers, cfg.norm_first ? "pre-norm" : "post-norm", cfg.film ? ", FiLM stem" : "", cfg.vocab.size() - 2,
                 cfg.answers.size(), (long long)n_params, (long long)n_img, train.examples.size(),
                 (long long)unanswerable, (long long)test.images.size(), test.examples.size(), o.epochs,
                 (long long)steps_per_epoch, o.images_per_batch, num_threads());
    std::fflush(log);
  }

  StopSignalScope signals;
  Arena arena;
  Graph g(arena);
  g.training = true;
  std::vector<int64_t> idx;
  VqaBatch b;
  Tensor targets;
  const int64_t K = av.size();
  for (int epoch = st.epoch; epoch < o.epochs; ++epoch) {
    batcher.start_epoch(epoch);
    if (st.batch_in_epoch > 0) batcher.seek(st.batch_in_epoch);
    ProgressOptions po;
    po.unit = "img/s";
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs),
                 steps_per_epoch * o.images_per_batch, stderr, po);
    auto t_epoch = std::chrono::steady_clock::now();
    const double seconds_before = st.epoch_seconds;
    while (batcher.next(&idx)) {
      std::vector<int64_t> ex = bb.build(idx, true, &b, &targets, epoch < o.non_relational_epochs);
      float lr = warmup_cosine_lr(st.step, warmup, total_steps, o.lr, o.min_lr);
      if (!ex.empty()) {
        g.reset();
        g.seed = mix64(o.seed * 7919 + uint64_t(st.step));
        Var logits = vqa_forward(g, m, b);
        Var loss = ag::soft_cross_entropy(g, logits, targets);
        const float lv = g.data(loss)[0];
        MMKIT_CHECK(std::isfinite(lv), "training diverged: loss is ", lv, " at step ", st.step, " (try a lower --lr)");
        g.backward(loss);
        // Clipping and zeroing fused into AdamW's one pass over the gradients,
        // which are zero on entry (AdamW starts from zeroed buffers and every
        // step zeroes them again).
        opt.step(lr, o.clip_grad > 0 ? clip_scale(grad_norm(params), o.clip_grad) : 1.f, /*zero_grads=*/true);
        const float* L = g.data(logits);
        for (size_t q = 0; q < ex.size(); ++q)
          st.acc_sum += vqa_accuracy(av.answers()[size_t(argmax(L + int64_t(q) * K, K))],
                                     train.examples[size_t(ex[q])].answers);
        st.seen += int64_t(ex.size());
        st.loss_sum += double(lv) * double(ex.size());
      }
      ++st.step;
      ++st.batch_in_epoch;
      st.epoch_seconds =
          seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f acc %.3f lr %.2e", st.loss_sum / std::max<int64_t>(1, st.seen),
                    st.acc_sum / std::max<int64_t>(1, st.seen), lr);
      bar.update(st.batch_in_epoch * o.images_per_batch, extra);
      const bool stop = stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps);
      const bool epoch_done = st.batch_in_epoch == steps_per_epoch;
      if (!epoch_done && (stop || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0)))
        save_checkpoint(o.out_dir, m, opt, st, o);
      if (stop && !epoch_done) {
        bar.finish("stopped");
        std::fprintf(log, "%s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                     stop_signal() ? "interrupted" : "stopped", (long long)st.step,
                     o.out_dir.c_str());
        return st.history;
      }
    }
    bar.finish();
    VqaEvalResult ev = evaluate_vqa(m, test, 16);
    VqaEpochRecord rec;
    rec.epoch = epoch + 1;
    rec.train_loss = st.loss_sum / std::max<int64_t>(1, st.seen);
    rec.train_acc = st.acc_sum / std::max<int64_t>(1, st.seen);
    rec.test_loss = ev.loss;
    rec.test_acc = ev.accuracy;
    rec.test_acc_relational = ev.relational.accuracy;
    rec.test_acc_non_relational = ev.non_relational.accuracy;
    rec.seconds = st.epoch_seconds;
    rec.questions_per_s = st.epoch_seconds > 0 ? double(st.seen) / st.epoch_seconds : 0;
    st.history.push_back(rec);
    std::fprintf(log,
                 "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f (non-relational %.4f, relational "
                 "%.4f) | %.1f s, %.0f questions/s\n",
                 rec.epoch, o.epochs, rec.train_loss, rec.train_acc, rec.test_loss, rec.test_acc,
                 rec.test_acc_non_relational, rec.test_acc_relational, rec.seconds, rec.questions_per_s);
    std::fflush(log);
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.loss_sum = st.acc_sum = 0;
    st.seen = 0;
    st.epoch_seconds = 0;
    save_checkpoint(o.out_dir, m, opt, st, o);
    write_history(o.out_dir, st.history, record_json, curve_point, "VQA (co-attention fusion)");
    if (stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps)) {
      std::fprintf(log, "stopped after epoch %d; checkpoint saved in %s\n", epoch + 1, o.out_dir.c_str());
      return st.history;
    }
  }
  return st.history;
}

}  // namespace mmkit::train
