#include "mmkit/text/caption_vocab.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "mmkit/core/error.h"

namespace mmkit::text {

namespace {
const char* const kSpecials[4] = {"<pad>", "<bos>", "<eos>", "<unk>"};

bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '\'' ||
         c == '-' || c >= 0x80;
}
}  // namespace

CaptionVocab::CaptionVocab() {
  for (const char* s : kSpecials) add(s);
}

void CaptionVocab::add(const std::string& w) {
  index_.emplace(w, int32_t(words_.size()));
  words_.push_back(w);
}

std::vector<std::string> CaptionVocab::split_words(const std::string& caption) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur);
    cur.clear();
  };
  for (unsigned char c : caption) {
    if (word_byte(c)) {
      cur += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c);
    } else {
      flush();
      if (c > ' ' && c < 0x7f) out.push_back(std::string(1, char(c)));
    }
  }
  flush();
  return out;
}

CaptionVocab CaptionVocab::build(const std::vector<std::string>& captions, int min_count) {
  std::map<std::string, int64_t> counts;
  for (const auto& c : captions)
    for (auto& w : split_words(c)) ++counts[w];
  std::vector<std::pair<std::string, int64_t>> kept;
  for (auto& [w, n] : counts)
    if (n >= min_count && w.front() != '<') kept.push_back({w, n});  // "<..." would clash with specials
  std::stable_sort(kept.begin(), kept.end(), [](auto& a, auto& b) { return a.second > b.second; });
  CaptionVocab v;
  for (auto& [w, n] : kept) v.add(w);
  return v;
}

const std::string& CaptionVocab::word(int32_t id) const {
  return id >= 0 && id < int32_t(words_.size()) ? words_[size_t(id)] : words_[kUnk];
}

int32_t CaptionVocab::id(const std::string& w) const {
  auto it = index_.find(w);
  return it == index_.end() ? kUnk : it->second;
}

std::vector<int32_t> CaptionVocab::encode(const std::string& caption) const {
  std::vector<int32_t> ids;
  for (auto& w : split_words(caption)) ids.push_back(id(w));
  return ids;
}

std::string CaptionVocab::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t t : ids) {
    if (t == kEos) break;
    if (t == kPad || t == kBos) continue;
    const std::string& w = word(t);
    bool tight = w.size() == 1 && std::string(",.:;!?").find(w[0]) != std::string::npos;
    if (!s.empty() && !tight) s += ' ';
    s += w;
  }
  return s;
}

std::string CaptionVocab::to_json() const { return nlohmann::json(words_).dump(); }

CaptionVocab CaptionVocab::from_json(const std::string& text, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  MMKIT_CHECK(j.is_array() && j.size() >= 4, where, ": vocabulary must be a JSON array of at least the 4 special words");
  for (int k = 0; k < 4; ++k)
    MMKIT_CHECK(j[size_t(k)].is_string() && j[size_t(k)].get<std::string>() == kSpecials[k], where,
                ": vocabulary entry ", k, " must be ", kSpecials[k]);
  CaptionVocab v;
  for (size_t k = 4; k < j.size(); ++k) {
    MMKIT_CHECK(j[k].is_string() && !j[k].get<std::string>().empty(), where, ": vocabulary entry ", k,
                " is not a non-empty string");
    std::string w = j[k].get<std::string>();
    MMKIT_CHECK(!v.index_.count(w), where, ": vocabulary word '", w, "' appears twice");
    v.add(w);
  }
  return v;
}

}  // namespace mmkit::text
