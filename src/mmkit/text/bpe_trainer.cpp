#include "mmkit/text/bpe_trainer.h"

#include <chrono>
#include <cstdint>
#include <queue>
#include <unordered_map>

#include "mmkit/core/error.h"
#include "mmkit/text/clip_tokenizer.h"

namespace mmkit::text {

namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> sym;  // symbol ids, left to right
  int64_t count = 0;         // occurrences in the corpus
};

// Symbols: ids 0..255 are byte b, 256..511 byte b + "</w>", then one per merge.
struct Trainer {
  std::vector<std::string> str;  // id -> symbol string
  std::vector<Word> words;
  std::unordered_map<uint64_t, int64_t> count;               // pair -> occurrences
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that may hold it

  struct Entry {
    int64_t count;
    int32_t a, b;
  };
  // Priority: higher count, then smaller (str[a], str[b]), then smaller ids (only reachable if two
  // symbols spell the same string), so the order is total and independent of hashing.
  struct Lower {
    const std::vector<std::string>* str;
    bool operator()(const Entry& x, const Entry& y) const {
      if (x.count != y.count) return x.count < y.count;
      int c = (*str)[size_t(x.a)].compare((*str)[size_t(y.a)]);
      if (c != 0) return c > 0;
      c = (*str)[size_t(x.b)].compare((*str)[size_t(y.b)]);
      if (c != 0) return c > 0;
      return x.a != y.a ? x.a > y.a : x.b > y.b;
    }
  };

  // Adds `sign` * word count for every adjacent pair of word w; with `track`, records w under
  // pairs that contain symbol `track` (the merge's new symbol) in where/new_keys.
  void count_pairs(int32_t w, int64_t sign, int32_t track, std::vector<uint64_t>* new_keys) {
    const Word& word = words[size_t(w)];
    for (size_t i = 0; i + 1 < word.sym.size(); ++i) {
      uint64_t k = pair_key(word.sym[i], word.sym[i + 1]);
      count[k] += sign * word.count;
      if (sign > 0 && (track < 0 || word.sym[i] == track || word.sym[i + 1] == track)) {
        std::vector<int32_t>& ws = where[k];
        if (ws.empty() && new_keys) new_keys->push_back(k);
        if (ws.empty() || ws.back() != w) ws.push_back(w);  // words are visited one at a time
      }
    }
  }
};

}  // namespace

std::vector<std::string> train_bpe_merges(const std::vector<std::string>& texts, int num_merges,
                                          int min_frequency) {
  MMKIT_CHECK(num_merges >= 0, "train_bpe_merges: num_merges must be >= 0, got ", num_merges);
  MMKIT_CHECK(min_frequency >= 1, "train_bpe_merges: min_frequency must be >= 1, got ", min_frequency);

  // Distinct texts, then distinct words: captions repeat a lot, and pre_tokenize (HTML unescape,
  // lowercasing, the split) is the costly part of reading them.
  std::unordered_map<std::string, int64_t> text_count;
  for (const std::string& t : texts) ++text_count[t];
  std::unordered_map<std::string, int64_t> word_count;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto it = text_count.find(texts[i]);
    if (it == text_count.end()) continue;  // already read (duplicate)
    std::vector<std::string> pieces;
    try {
      pieces = pre_tokenize(texts[i]);
    } catch (const Error& e) {
      fail("train_bpe_merges: text ", i, ": ", e.what());
    }
    for (std::string& p : pieces)
      if (p != "<|startoftext|>" && p != "<|endoftext|>") word_count[p] += it->second;
    text_count.erase(it);
  }

  Trainer t;
  t.str.reserve(512 + size_t(num_merges));
  for (int b = 0; b < 256; ++b) t.str.push_back(byte_symbol(uint8_t(b)));
  for (int b = 0; b < 256; ++b) t.str.push_back(byte_symbol(uint8_t(b)) + "</w>");
  t.words.reserve(word_count.size());
  for (auto& [piece, n] : word_count) {
    Word w;
    w.count = n;
    for (size_t i = 0; i < piece.size(); ++i)
      w.sym.push_back(int32_t(uint8_t(piece[i])) + (i + 1 == piece.size() ? 256 : 0));
    t.words.push_back(std::move(w));
  }
  for (size_t w = 0; w < t.words.size(); ++w) t.count_pairs(int32_t(w), +1, -1, nullptr);

  std::priority_queue<Trainer::Entry, std::vector<Trainer::Entry>, Trainer::Lower> heap(
      Trainer::Lower{&t.str});
  for (const auto& [k, n] : t.count)
    if (n >= min_frequency) heap.push({n, int32_t(k >> 32), int32_t(uint32_t(k))});

  std::vector<std::string> merges;
  std::vector<uint64_t> new_keys;
  while (int(merges.size()) < num_merges && !heap.empty()) {
    // Counts of existing pairs only fall (a pair holding the new symbol is a new pair), so an
    // entry whose count is current and on top is the true maximum; stale ones are re-queued.
    Trainer::Entry top = heap.top();
    heap.pop();
    const int32_t a = top.a, b = top.b;
    const uint64_t key = pair_key(a, b);
    auto cit = t.count.find(key);
    const int64_t now = cit == t.count.end() ? 0 : cit->second;
    if (now != top.count) {
      if (now >= min_frequency) heap.push({now, a, b});
      continue;
    }
    const int32_t id = int32_t(t.str.size());
    t.str.push_back(t.str[size_t(a)] + t.str[size_t(b)]);
    merges.push_back(t.str[size_t(a)] + " " + t.str[size_t(b)]);

    std::vector<int32_t> ws = std::move(t.where[key]);
    t.where.erase(key);
    new_keys.clear();
    for (int32_t w : ws) {
      std::vector<int32_t>& s = t.words[size_t(w)].sym;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;  // listed before an earlier merge consumed the pair
      t.count_pairs(w, -1, -1, nullptr);
      size_t out = 0;
      for (size_t i = 0; i < s.size(); ++out) {  // all occurrences, left to right, like encoding
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out] = id;
          i += 2;
        } else {
          s[out] = s[i++];
        }
      }
      s.resize(out);
      t.count_pairs(w, +1, id, &new_keys);
    }
    for (uint64_t k : new_keys) {
      int64_t n = t.count[k];
      if (n >= min_frequency) heap.push({n, int32_t(k >> 32), int32_t(uint32_t(k))});
    }
  }
  return merges;
}

ClipTokenizer learn_clip_tokenizer(const std::vector<std::string>& texts, int num_merges, std::FILE* log) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> merges = train_bpe_merges(texts, num_merges);
  ClipTokenizer tok = ClipTokenizer::from_merges(merges);
  std::fprintf(log, "tokenizer: learned %zu BPE merges from %zu captions in %.2f s (vocabulary %lld)\n", merges.size(),
               texts.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               (long long)tok.vocab_size());
  return tok;
}

}  // namespace mmkit::text
