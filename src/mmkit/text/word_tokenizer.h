// Word-level tokenizer for questions of the project's own VQA models.
//
//   auto tok = mmkit::text::WordTokenizer::build(training_questions);
//   std::vector<int32_t> ids = tok.encode("What is the shape of the red object?");
//   // {cls, what, is, the, shape, of, the, red, object}
//
// Normalisation: ASCII letters are lower-cased; a word is a maximal run of
// letters, digits, apostrophes or non-ASCII bytes (so "object?" -> "object",
// "don't" stays one word); everything else separates words. The vocabulary is
// every word of the training questions, most frequent first (ties by spelling),
// after the specials <pad> = 0 and <cls> = 1; encode() prepends <cls>, whose
// output the VQA model pools. It is stored with the model (VqaConfig::vocab),
// so a question is encoded the same way at training and at inference.
//
// Errors (mmkit::Error): a question with no words ("empty question"), a word
// the model has never seen (named, with the question), more words than the
// model's max_len, invalid UTF-8.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace mmkit::text {

class WordTokenizer {
 public:
  static constexpr int32_t kPad = 0, kCls = 1;

  WordTokenizer() = default;
  // vocab[0] must be "<pad>" and vocab[1] "<cls>"; words must be unique.
  explicit WordTokenizer(std::vector<std::string> vocab);
  static WordTokenizer build(const std::vector<std::string>& questions);

  // Lower-cased words of `s` (no specials); throws on invalid UTF-8.
  static std::vector<std::string> words(const std::string& s);

  // <cls> + word ids. max_len > 0 bounds the result length (<cls> included).
  std::vector<int32_t> encode(const std::string& question, int64_t max_len = 0) const;

  const std::vector<std::string>& vocab() const { return vocab_; }
  int64_t size() const { return int64_t(vocab_.size()); }
  bool contains(const std::string& word) const { return index_.count(word) != 0; }

 private:
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace mmkit::text
