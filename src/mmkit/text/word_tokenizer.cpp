#include "mmkit/text/word_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "mmkit/core/error.h"
#include "mmkit/text/utf8.h"

namespace mmkit::text {

WordTokenizer::WordTokenizer(std::vector<std::string> vocab) : vocab_(std::move(vocab)) {
  MMKIT_CHECK(vocab_.size() >= 2 && vocab_[0] == "<pad>" && vocab_[1] == "<cls>",
              "word vocabulary must start with <pad>, <cls> (got ", vocab_.size(), " entries)");
  for (size_t i = 0; i < vocab_.size(); ++i) {
    MMKIT_CHECK(!vocab_[i].empty(), "word vocabulary: empty word at index ", i);
    MMKIT_CHECK(index_.emplace(vocab_[i], int32_t(i)).second, "word vocabulary: '", vocab_[i],
                "' appears twice");
  }
}

std::vector<std::string> WordTokenizer::words(const std::string& s) {
  utf8_decode(s);  // validates (throws "text is not valid UTF-8 at byte N")
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : s) {
    const bool word_char = std::isalnum(c) || c == '\'' || c >= 0x80;
    if (word_char) {
      cur += char(c < 0x80 ? std::tolower(c) : c);
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

WordTokenizer WordTokenizer::build(const std::vector<std::string>& questions) {
  std::map<std::string, int64_t> freq;
  for (auto& q : questions)
    for (auto& w : words(q)) freq[w]++;
  std::vector<std::pair<std::string, int64_t>> v(freq.begin(), freq.end());
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second; });
  std::vector<std::string> vocab = {"<pad>", "<cls>"};
  for (auto& [w, n] : v) vocab.push_back(w);
  return WordTokenizer(std::move(vocab));
}

std::vector<int32_t> WordTokenizer::encode(const std::string& question, int64_t max_len) const {
  std::vector<std::string> ws;
  try {
    ws = words(question);
  } catch (const Error& e) {
    fail("question: ", e.what());
  }
  MMKIT_CHECK(!ws.empty(), "empty question: \"", question, "\" has no words");
  std::vector<int32_t> ids = {kCls};
  for (auto& w : ws) {
    auto it = index_.find(w);
    if (it == index_.end())
      fail("unknown word '", w, "' in question \"", question, "\" (the model knows ", vocab_.size() - 2,
           " words from its training questions)");
    ids.push_back(it->second);
  }
  MMKIT_CHECK(max_len <= 0 || int64_t(ids.size()) <= max_len, "question \"", question, "\" has ", ws.size(),
              " words; the model takes at most ", max_len - 1);
  return ids;
}

}  // namespace mmkit::text
