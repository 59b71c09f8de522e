// Word-level vocabulary for the project's own caption models, built from the
// training captions and stored in the model file (metadata "vocab"), so a
// model is one self-contained file.
//
//   auto vocab = mmkit::text::CaptionVocab::build(train_captions);
//   std::vector<int32_t> ids = vocab.encode("A red circle, a blue square.");  // no BOS/EOS
//   std::string s = vocab.decode(ids);                  // "a red circle , a blue square ."
//
// Words: ASCII letters are lower-cased; a word is a run of letters, digits,
// apostrophes, hyphens or non-ASCII bytes (UTF-8 stays intact); every other
// printable character (",", ".", ":" ...) is a token of its own; whitespace
// and control characters separate tokens. Ids 0..3 are the specials.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace mmkit::text {

class CaptionVocab {
 public:
  static constexpr int32_t kPad = 0, kBos = 1, kEos = 2, kUnk = 3;

  CaptionVocab();  // the four specials only
  // Every word occurring at least `min_count` times, most frequent first
  // (ties alphabetical, so the ids do not depend on caption order).
  static CaptionVocab build(const std::vector<std::string>& captions, int min_count = 1);
  static std::vector<std::string> split_words(const std::string& caption);

  int64_t size() const { return int64_t(words_.size()); }
  const std::string& word(int32_t id) const;  // "<unk>" for ids out of range
  int32_t id(const std::string& word) const;  // kUnk when absent
  std::vector<int32_t> encode(const std::string& caption) const;
  // Stops at EOS; skips PAD and BOS; no space before , . : ; ! ?
  std::string decode(const std::vector<int32_t>& ids) const;

  // JSON array of the words in id order; from_json checks the specials.
  std::string to_json() const;
  static CaptionVocab from_json(const std::string& json, const std::string& where);

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int32_t> index_;
  void add(const std::string& w);
};

}  // namespace mmkit::text
