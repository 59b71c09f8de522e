// VQA answer vocabulary, soft-score targets and the VQA accuracy metric
// (Antol et al. 2015; Goyal et al. 2017, VQA v2).
//
//   auto vocab = mmkit::AnswerVocab::build(train_examples, 3129);  // top-K answers
//   float acc = mmkit::vqa_accuracy("2", {"2", "2", "3"});         // 0.666...
//
// Accuracy of a predicted answer a against the annotators' answers:
//   acc(a) = min(#annotators who gave a / 3, 1)                     (VQA's formula)
// generalised to fewer than 3 annotators as min(#a / min(3, n), 1), so a
// single-answer data set (Sort-of-CLEVR) is scored by exact match. (The
// official evaluation also averages over the 10 leave-one-out subsets of 10
// annotators; this is the plain formula.) The soft score of every
// vocabulary answer is the same quantity, so the training target of a
// question is that score vector.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mmkit/data/vqa_jsonl.h"

namespace mmkit {

float vqa_accuracy(const std::string& predicted, const std::vector<std::string>& answers);

class AnswerVocab {
 public:
  AnswerVocab() = default;
  explicit AnswerVocab(std::vector<std::string> answers);  // unique, non-empty
  // The top_k most frequent answers over all annotations of `ex` (ties by
  // spelling); top_k <= 0 keeps all.
  static AnswerVocab build(const std::vector<data::VqaExample>& ex, int64_t top_k);

  int32_t index(const std::string& a) const;  // -1 when out of vocabulary
  const std::vector<std::string>& answers() const { return answers_; }
  int64_t size() const { return int64_t(answers_.size()); }

  // Writes the K soft scores of `answers` into out[0..K): score_k =
  // vqa_accuracy(answer_k, answers). Returns their sum (0: no annotated
  // answer is in the vocabulary).
  float soft_scores(const std::vector<std::string>& answers, float* out) const;

 private:
  std::vector<std::string> answers_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace mmkit
