#include "mmkit/eval/vqa_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mmkit/autograd/graph.h"
#include "mmkit/util/progress.h"

namespace mmkit {

VqaBatchBuilder::VqaBatchBuilder(const Vqa& model, const data::VqaDataset& data, const AnswerVocab& answers)
    : m_(model), d_(data), answers_(answers), token_cache_(data.examples.size()) {}

std::vector<int64_t> VqaBatchBuilder::build(const std::vector<int64_t>& image_ids, bool drop_unanswerable, VqaBatch* b,
                                          Tensor* targets, bool skip_relational) {
  const VqaConfig& c = m_.cfg;
  const int64_t S = c.image_size, C = c.input_channels(), K = answers_.size();
  std::vector<int64_t> ex;
  std::vector<int32_t> img_of;
  std::vector<float> row(static_cast<size_t>(K));
  for (size_t i = 0; i < image_ids.size(); ++i)
    for (int64_t e : d_.questions_of[size_t(image_ids[i])]) {
      if (drop_unanswerable && answers_.soft_scores(d_.examples[size_t(e)].answers, row.data()) <= 0.f) continue;
      if (skip_relational && d_.examples[size_t(e)].relational) continue;
      ex.push_back(e);
      img_of.push_back(int32_t(i));
    }
  const int64_t Bi = int64_t(image_ids.size()), Bq = int64_t(ex.size());
  b->images = Tensor::empty(Shape{Bi, C, S, S});
  for (int64_t i = 0; i < Bi; ++i)
    vqa_image_to_input(c, d_.images[size_t(image_ids[size_t(i)])], b->images.f32() + i * C * S * S);
  size_t T = 1;
  for (int64_t e : ex) {
    auto& ids = token_cache_[size_t(e)];
    if (ids.empty()) ids = m_.tokenizer.encode(d_.examples[size_t(e)].question, c.max_question_len);
    T = std::max(T, ids.size());
  }
  b->tokens = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::i32);
  b->pad = Tensor::zeros(Shape{Bq, int64_t(T)}, DType::u8);
  b->image_index = Tensor::empty(Shape{Bq}, DType::i32);
  *targets = Tensor::zeros(Shape{Bq, K});
  for (int64_t q = 0; q < Bq; ++q) {
    const auto& ids = token_cache_[size_t(ex[size_t(q)])];
    for (size_t t = 0; t < T; ++t) {
      b->tokens.ptr<int32_t>()[q * int64_t(T) + int64_t(t)] = t < ids.size() ? ids[t] : text::WordTokenizer::kPad;
      b->pad.ptr<uint8_t>()[q * int64_t(T) + int64_t(t)] = t < ids.size() ? 0 : 1;
    }
    b->image_index.ptr<int32_t>()[q] = img_of[size_t(q)];
    float* tr = targets->f32() + q * K;
    float sum = answers_.soft_scores(d_.examples[size_t(ex[size_t(q)])].answers, tr);
    if (sum > 0)
      for (int64_t k = 0; k < K; ++k) tr[k] /= sum;
  }
  return ex;
}

int64_t argmax_row(const float* x, int64_t K) {
  int64_t best = 0;
  for (int64_t k = 1; k < K; ++k)
    if (x[k] > x[best]) best = k;
  return best;
}

VqaEvalResult evaluate_vqa(Vqa& m, const data::VqaDataset& d, int images_per_batch, bool show_progress) {
  auto t0 = std::chrono::steady_clock::now();
  AnswerVocab av(m.cfg.answers);
  VqaBatchBuilder bb(m, d, av);
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
      const float acc = vqa_accuracy(av.answers()[size_t(argmax_row(L + int64_t(q) * K, K))], e.answers);
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

}  // namespace mmkit
