#include "mmkit/eval/vqa_accuracy.h"

#include <algorithm>
#include <map>

#include "mmkit/core/error.h"

namespace mmkit {

float vqa_accuracy(const std::string& predicted, const std::vector<std::string>& answers) {
  if (answers.empty()) return 0.f;
  int64_t n = 0;
  for (auto& a : answers) n += a == predicted;
  const int64_t full = std::min<int64_t>(3, int64_t(answers.size()));
  return std::min(1.f, float(n) / float(full));
}

AnswerVocab::AnswerVocab(std::vector<std::string> answers) : answers_(std::move(answers)) {
  for (size_t i = 0; i < answers_.size(); ++i) {
    MMKIT_CHECK(!answers_[i].empty(), "answer vocabulary: empty answer at index ", i);
    MMKIT_CHECK(index_.emplace(answers_[i], int32_t(i)).second, "answer vocabulary: '", answers_[i],
                "' appears twice");
  }
}

AnswerVocab AnswerVocab::build(const std::vector<data::VqaExample>& ex, int64_t top_k) {
  std::map<std::string, int64_t> freq;
  for (auto& e : ex)
    for (auto& a : e.answers) freq[a]++;
  std::vector<std::pair<std::string, int64_t>> v(freq.begin(), freq.end());
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second; });
  if (top_k > 0 && int64_t(v.size()) > top_k) v.resize(size_t(top_k));
  std::vector<std::string> answers;
  for (auto& [a, n] : v) answers.push_back(a);
  return AnswerVocab(std::move(answers));
}

int32_t AnswerVocab::index(const std::string& a) const {
  auto it = index_.find(a);
  return it == index_.end() ? -1 : it->second;
}

float AnswerVocab::soft_scores(const std::vector<std::string>& answers, float* out) const {
  std::fill(out, out + answers_.size(), 0.f);
  float sum = 0;
  for (auto& a : answers) {
    int32_t k = index(a);
    if (k >= 0 && out[k] == 0.f) {
      out[k] = vqa_accuracy(a, answers);
      sum += out[k];
    }
  }
  return sum;
}

}  // namespace mmkit
