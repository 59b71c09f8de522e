#include "mmkit/text/clip_tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "mmkit/core/error.h"
#include "mmkit/text/html_unescape.h"
#include "mmkit/text/unicode.h"
#include "mmkit/text/utf8.h"

namespace mmkit::text {

namespace {

// Merges the reference keeps: merges[1 : 49152-256-2+1] after the header line.
constexpr size_t kMaxMerges = 49152 - 256 - 2;
const char* const kSotText = "<|startoftext|>";
const char* const kEotText = "<|endoftext|>";
const char* const kEndOfWord = "</w>";
const char* const kMergesTextHeader = "#version: mmkit-bpe 1";

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order, so every byte has a visible, non-space symbol. `order` lists the bytes
// in the dict's insertion order, which is the order of the first 256 vocabulary entries.
struct ByteAlphabet {
  char32_t symbol[256];
  uint8_t order[256];
  int16_t byte_of[0x144];  // inverse of symbol (all symbols are < U+0144), -1 if none

  ByteAlphabet() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    int k = 0, extra = 0;
    for (int b = 0; b < 256; ++b)
      if (printable(b)) symbol[b] = b, order[k++] = static_cast<uint8_t>(b);
    for (int b = 0; b < 256; ++b)
      if (!printable(b)) symbol[b] = 256 + extra++, order[k++] = static_cast<uint8_t>(b);
    std::fill(byte_of, byte_of + 0x144, int16_t(-1));
    for (int b = 0; b < 256; ++b) byte_of[symbol[b]] = static_cast<int16_t>(b);
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

std::u32string clean_u32(const std::u32string& text) {
  std::u32string s = html_unescape(html_unescape(text));
  std::u32string collapsed;
  collapsed.reserve(s.size());
  bool pending_space = false;
  for (char32_t c : s) {
    if (is_space(c)) {
      pending_space = !collapsed.empty();
      continue;
    }
    if (pending_space) collapsed.push_back(' ');
    pending_space = false;
    collapsed.push_back(c);
  }
  return to_lower(collapsed);
}

// Matches an ASCII lowercase literal at s[i]; under the reference's IGNORECASE, 's' also matches
// U+017F LATIN SMALL LETTER LONG S (the only non-ASCII character that case-folds to one of the
// letters used, once the text is lowercased).
bool match_literal(const std::u32string& s, size_t i, const char* lit) {
  for (; *lit; ++lit, ++i) {
    if (i >= s.size()) return false;
    char32_t c = s[i];
    if (c != char32_t(*lit) && !(*lit == 's' && c == 0x017F)) return false;
  }
  return true;
}

// Calls f(begin, end) for each piece of CLIP's pattern in cleaned text, leftmost alternative first
// as the regex engine tries them. Pieces are bounded only by the text for letter/other runs.
template <class F>
void for_each_piece(const std::u32string& s, F&& f) {
  static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t end = i;
    if (s[i] == '<') {
      if (match_literal(s, i, kSotText)) end = i + 15;
      else if (match_literal(s, i, kEotText)) end = i + 13;
    } else if (s[i] == '\'') {
      for (const char* c : kContractions)
        if (match_literal(s, i, c)) {
          end = i + std::char_traits<char>::length(c);
          break;
        }
    }
    if (end == i) {
      PreTokenClass cls = pretoken_class(s[i]);
      if (cls == PreTokenClass::letter || cls == PreTokenClass::other) {
        end = i + 1;
        while (end < n && pretoken_class(s[end]) == cls) ++end;
      } else if (cls == PreTokenClass::number) {
        end = i + 1;
      } else {  // whitespace, and characters no alternative accepts, are skipped
        ++i;
        continue;
      }
    }
    if (!f(i, end)) return;
    i = end;
  }
}

}  // namespace

std::string byte_symbol(uint8_t b) {
  std::string s;
  utf8_append(s, byte_alphabet().symbol[b]);
  return s;
}

namespace {

// "a b" -> {a, b}; empty `first` when the line is not exactly two non-empty symbols.
std::pair<std::string, std::string> split_merge(const std::string& line) {
  size_t sp = line.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
    return {};
  return {line.substr(0, sp), line.substr(sp + 1)};
}

// Checks merges given as strings (from_merges, from_merges_text): two symbols each, every symbol a
// byte symbol (with or without "</w>") or an earlier merge's result. `where(k)` names merge k.
std::vector<std::pair<std::string, std::string>> checked_merges(
    const std::vector<std::string>& merges, const std::function<std::string(size_t)>& where) {
  std::unordered_set<std::string> formed;
  formed.reserve(512 + merges.size());
  for (int b = 0; b < 256; ++b) {
    formed.insert(byte_symbol(uint8_t(b)));
    formed.insert(byte_symbol(uint8_t(b)) + kEndOfWord);
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  for (size_t k = 0; k < merges.size(); ++k) {
    auto p = split_merge(merges[k]);
    if (p.first.empty()) fail(where(k), ": expected two symbols separated by one space 'a b', got '", merges[k], "'");
    for (const std::string* side : {&p.first, &p.second})
      if (!formed.count(*side))
        fail(where(k), " '", merges[k], "': symbol '", *side,
             "' is neither a byte symbol (optionally with </w>) nor the result of an earlier merge");
    formed.insert(p.first + p.second);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

}  // namespace

struct ClipTokenizer::Impl {
  struct Merge {
    int32_t rank;
    int32_t id;  // id of the concatenation
  };

  std::vector<std::string> tokens;       // id -> vocabulary string ("" where no token has the id)
  std::vector<bool> known;               // id -> has a token
  std::vector<std::string> token_bytes;  // id -> raw bytes it stands for ("</w>" kept literally)
  std::unordered_map<std::string, int32_t> encoder;
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> merge
  int32_t byte_id[256];
  int32_t byte_eow_id[256];
  int32_t sot = -1, eot = -1;
  std::vector<std::string> merge_list;  // "a b" in rank order, as given

  // Per-word BPE results keyed by the piece's UTF-8 bytes; bounded so that a long stream of
  // distinct words cannot grow it without limit.
  static constexpr size_t kCacheMaxEntries = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 64;
  std::mutex cache_mu;
  std::unordered_map<std::string, std::vector<int32_t>> cache;

  void add_token(int32_t id, const std::string& s) {
    if (size_t(id) >= tokens.size()) {
      tokens.resize(id + 1);
      known.resize(id + 1, false);
    }
    tokens[id] = s;
    known[id] = true;
    encoder[s] = id;  // a repeated string keeps its last id, like the reference's dict
  }

  int32_t require(const std::string& s, const std::string& where) const {
    auto it = encoder.find(s);
    if (it == encoder.end()) fail(where, ": token '", s, "' is not in the vocabulary");
    return it->second;
  }

  // Byte ids, special ids and decode tables, once all tokens are known.
  void finish(const std::string& where) {
    for (int b = 0; b < 256; ++b) {
      byte_id[b] = require(byte_symbol(uint8_t(b)), where);
      byte_eow_id[b] = require(byte_symbol(uint8_t(b)) + kEndOfWord, where);
    }
    sot = require(kSotText, where);
    eot = require(kEotText, where);
    const ByteAlphabet& alpha = byte_alphabet();
    token_bytes.resize(tokens.size());
    for (size_t id = 0; id < tokens.size(); ++id) {
      if (!known[id]) continue;
      std::string& out = token_bytes[id];
      for (char32_t c : utf8_decode(tokens[id])) {
        if (c >= 0x144 || alpha.byte_of[c] < 0)
          fail(where, ": token '", tokens[id], "' (id ", id, ") has a character outside the byte alphabet");
        out.push_back(static_cast<char>(alpha.byte_of[c]));
      }
    }
  }

  // One merge rule; pairs whose sides are not tokens can never occur in a word and are dropped.
  void add_merge(int32_t rank, const std::string& a, const std::string& b, int32_t merged_id) {
    auto ia = encoder.find(a), ib = encoder.find(b);
    if (ia == encoder.end() || ib == encoder.end()) return;
    merges[pair_key(ia->second, ib->second)] = Merge{rank, merged_id};  // last rank wins, like dict()
  }

  static std::shared_ptr<Impl> from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs,
                                          const std::string& where);
  void bpe(const std::string& word, std::vector<int32_t>& out) const;
  void bpe_cached(const std::string& word, std::vector<int32_t>& out);
  std::vector<int32_t> encode(const std::string& text, size_t max_tokens);
};

// The reference repeatedly picks the lowest-ranked adjacent pair and merges all its occurrences
// left to right. Same result in O(n log n): a heap of candidate pairs keyed by (rank, position)
// over a linked list of symbols, processed one rank at a time. A whole rank is taken off the heap
// before merging because pairs created by a merge may outrank the remaining occurrences, and the
// reference merges every occurrence first. Positions are the word's byte offsets, so the heap's
// tie-break is left-to-right. Stale entries are detected by re-checking both symbols.
void ClipTokenizer::Impl::bpe(const std::string& word, std::vector<int32_t>& out) const {
  const int32_t n = static_cast<int32_t>(word.size());
  if (n == 1) {
    out.push_back(byte_eow_id[uint8_t(word[0])]);
    return;
  }
  struct Entry {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> sym, prv, nxt;
  thread_local std::vector<Entry> heap, batch;
  sym.resize(n);
  prv.resize(n);
  nxt.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    uint8_t b = uint8_t(word[i]);
    sym[i] = i + 1 < n ? byte_id[b] : byte_eow_id[b];
    prv[i] = i - 1;
    nxt[i] = i + 1 < n ? i + 1 : -1;
  }
  auto push = [&](int32_t p) {
    if (p < 0 || nxt[p] < 0) return;
    auto it = merges.find(pair_key(sym[p], sym[nxt[p]]));
    if (it == merges.end()) return;
    heap.push_back(Entry{it->second.rank, p, sym[p], sym[nxt[p]], it->second.id});
    std::push_heap(heap.begin(), heap.end(), std::greater<Entry>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    batch.clear();
    const int32_t rank = heap.front().rank;
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<Entry>());
      batch.push_back(heap.back());
      heap.pop_back();
    }
    for (const Entry& e : batch) {
      const int32_t p = e.pos, q = nxt[p];
      if (sym[p] != e.left || q < 0 || sym[q] != e.right) continue;  // consumed or changed
      sym[p] = e.merged;
      sym[q] = -1;
      nxt[p] = nxt[q];
      if (nxt[q] >= 0) prv[nxt[q]] = p;
      push(prv[p]);
      push(p);
    }
  }
  for (int32_t i = 0; i >= 0; i = nxt[i]) out.push_back(sym[i]);
}

void ClipTokenizer::Impl::bpe_cached(const std::string& word, std::vector<int32_t>& out) {
  if (word.size() > kCacheMaxWordBytes) {
    bpe(word, out);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  bpe(word, out);
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() >= kCacheMaxEntries) cache.clear();
  cache.emplace(word, std::vector<int32_t>(out.begin() + start, out.end()));
}

std::vector<int32_t> ClipTokenizer::Impl::encode(const std::string& text, size_t max_tokens) {
  std::vector<int32_t> ids;
  if (max_tokens == 0) return ids;
  const std::u32string s = clean_u32(utf8_decode(text));
  std::string piece;
  for_each_piece(s, [&](size_t b, size_t e) {
    piece.clear();
    for (size_t k = b; k < e; ++k) utf8_append(piece, s[k]);
    if (piece == kSotText) ids.push_back(sot);
    else if (piece == kEotText) ids.push_back(eot);
    else bpe_cached(piece, ids);
    return ids.size() < max_tokens;
  });
  if (ids.size() > max_tokens) ids.resize(max_tokens);
  return ids;
}

ClipTokenizer::ClipTokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClipTokenizer ClipTokenizer::from_openai_merges(const std::string& gz_path) {
  gzFile f = gzopen(gz_path.c_str(), "rb");
  if (!f) fail("cannot open CLIP merges file ", gz_path);
  gzbuffer(f, 1 << 17);
  // Only the header plus kMaxMerges lines are used; the file holds many more, so stop early.
  std::string text;
  size_t lines = 0;
  std::vector<char> buf(1 << 18);
  while (lines <= kMaxMerges) {
    int got = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (got < 0) {
      int code;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      fail("CLIP merges file ", gz_path, ": gzip error: ", msg);
    }
    if (got == 0) break;
    lines += std::count(buf.data(), buf.data() + got, '\n');
    text.append(buf.data(), got);
  }
  gzclose(f);

  // Line 0 is the header. The vocabulary order is fixed by the reference: bytes, bytes + "</w>",
  // one token per merge, then the two special tokens.
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(kMaxMerges);
  size_t pos = text.find('\n');
  if (pos == std::string::npos) fail("CLIP merges file ", gz_path, ": no merges after the header line");
  ++pos;
  for (size_t line_no = 2; pairs.size() < kMaxMerges && pos < text.size(); ++line_no) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) break;  // end of the list
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      fail("CLIP merges file ", gz_path, " line ", line_no, ": expected two symbols 'a b', got '", line, "'");
    pairs.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }

  return ClipTokenizer(Impl::from_pairs(pairs, "CLIP merges file " + gz_path));
}

// OpenAI's vocabulary layout: bytes, bytes + "</w>", one token per merge, the two special tokens.
std::shared_ptr<ClipTokenizer::Impl> ClipTokenizer::Impl::from_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs, const std::string& where) {
  auto impl = std::make_shared<Impl>();
  int32_t id = 0;
  const ByteAlphabet& alpha = byte_alphabet();
  for (int k = 0; k < 256; ++k) impl->add_token(id++, byte_symbol(alpha.order[k]));
  for (int k = 0; k < 256; ++k) impl->add_token(id++, byte_symbol(alpha.order[k]) + kEndOfWord);
  impl->encoder.reserve(512 + pairs.size() + 2);
  for (const auto& p : pairs) impl->add_token(id++, p.first + p.second);
  impl->add_token(id++, kSotText);
  impl->add_token(id++, kEotText);
  impl->merges.reserve(pairs.size());
  impl->merge_list.reserve(pairs.size());
  for (size_t r = 0; r < pairs.size(); ++r) {
    impl->add_merge(int32_t(r), pairs[r].first, pairs[r].second, impl->encoder.at(pairs[r].first + pairs[r].second));
    impl->merge_list.push_back(pairs[r].first + " " + pairs[r].second);
  }
  impl->finish(where);
  return impl;
}

ClipTokenizer ClipTokenizer::from_merges(const std::vector<std::string>& merges) {
  auto pairs = checked_merges(merges, [](size_t k) { return "BPE merge " + std::to_string(k); });
  return ClipTokenizer(Impl::from_pairs(pairs, "BPE merges"));
}

ClipTokenizer ClipTokenizer::from_merges_text(const std::string& text) {
  size_t eol = text.find('\n');
  std::string header = text.substr(0, eol);
  if (header != kMergesTextHeader)
    fail("BPE merges text: first line must be '", kMergesTextHeader, "', got '",
         header.size() > 80 ? header.substr(0, 80) + "..." : header, "'");
  std::vector<std::string> merges;
  size_t pos = eol == std::string::npos ? text.size() : eol + 1;
  while (pos < text.size()) {
    eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    merges.push_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  // Line numbers count from 1 with the header as line 1.
  auto pairs = checked_merges(merges, [](size_t k) {
    return "BPE merges text line " + std::to_string(k + 2) + " (merge " + std::to_string(k) + ")";
  });
  return ClipTokenizer(Impl::from_pairs(pairs, "BPE merges text"));
}

std::string ClipTokenizer::merges_text() const {
  size_t n = std::char_traits<char>::length(kMergesTextHeader) + 1;
  for (const auto& m : impl_->merge_list) n += m.size() + 1;
  std::string s;
  s.reserve(n);
  s += kMergesTextHeader;
  s += '\n';
  for (const auto& m : impl_->merge_list) {
    s += m;
    s += '\n';
  }
  return s;
}

const std::vector<std::string>& ClipTokenizer::merges() const { return impl_->merge_list; }

ClipTokenizer ClipTokenizer::from_hf_files(const std::string& vocab_json, const std::string& merges_txt) {
  auto impl = std::make_shared<Impl>();
  {
    std::ifstream in(vocab_json, std::ios::binary);
    if (!in) fail("cannot open vocab file ", vocab_json);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      fail("vocab file ", vocab_json, ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) fail("vocab file ", vocab_json, ": expected a JSON object token -> id");
    impl->encoder.reserve(j.size());
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_number_integer())
        fail("vocab file ", vocab_json, ": id of token '", it.key(), "' is not an integer");
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= (int64_t(1) << 24))
        fail("vocab file ", vocab_json, ": id of token '", it.key(), "': got ", id, ", expected 0 <= id < 2^24");
      impl->add_token(int32_t(id), it.key());
    }
  }
  std::ifstream in(merges_txt, std::ios::binary);
  if (!in) fail("cannot open merges file ", merges_txt);
  std::string line;
  std::getline(in, line);  // "#version: 0.2" header; HF skips the first line unconditionally
  for (size_t line_no = 2, rank = 0; rank < kMaxMerges && std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      fail("merges file ", merges_txt, " line ", line_no, ": expected two symbols 'a b', got '", line, "'");
    std::string a = line.substr(0, sp), b = line.substr(sp + 1);
    int32_t merged = impl->require(a + b, "merges file " + merges_txt + " line " + std::to_string(line_no));
    impl->add_merge(int32_t(rank++), a, b, merged);
    impl->merge_list.push_back(line);
  }
  impl->finish("vocab file " + vocab_json);
  return ClipTokenizer(std::move(impl));
}

std::vector<int32_t> ClipTokenizer::encode(const std::string& utf8_text) const {
  return impl_->encode(utf8_text, SIZE_MAX);
}

std::vector<int32_t> ClipTokenizer::encode_padded(const std::string& text, int context_length) const {
  MMKIT_CHECK(context_length >= 2, "encode_padded: context_length ", context_length,
              " leaves no room for <|startoftext|> and <|endoftext|> (need >= 2)");
  std::vector<int32_t> ids(context_length, 0);
  std::vector<int32_t> body = impl_->encode(text, size_t(context_length) - 2);
  ids[0] = impl_->sot;
  std::copy(body.begin(), body.end(), ids.begin() + 1);
  ids[body.size() + 1] = impl_->eot;
  return ids;
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= impl_->tokens.size() || !impl_->known[id])
      fail("decode: id ", id, " is not in the vocabulary (size ", vocab_size(), ")");
    bytes += impl_->token_bytes[id];
  }
  // The reference replaces "</w>" after UTF-8 decoding; the same on bytes, since U+FFFD repair
  // never consumes ASCII.
  std::string spaced;
  spaced.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    if (bytes.compare(i, 4, kEndOfWord) == 0) {
      spaced.push_back(' ');
      i += 4;
    } else {
      spaced.push_back(bytes[i++]);
    }
  }
  return utf8_repair(spaced);
}

int32_t ClipTokenizer::sot() const { return impl_->sot; }
int32_t ClipTokenizer::eot() const { return impl_->eot; }
int64_t ClipTokenizer::vocab_size() const { return int64_t(impl_->tokens.size()); }

std::string ClipTokenizer::token(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->tokens.size() || !impl_->known[id])
    fail("token: id ", id, " is not in the vocabulary (size ", vocab_size(), ")");
  return impl_->tokens[id];
}

std::string clean_text(const std::string& utf8_text) { return utf8_encode(clean_u32(utf8_decode(utf8_text))); }

std::vector<std::string> pre_tokenize(const std::string& utf8_text) {
  const std::u32string s = clean_u32(utf8_decode(utf8_text));
  std::vector<std::string> out;
  for_each_piece(s, [&](size_t b, size_t e) {
    out.push_back(utf8_encode(s.substr(b, e - b)));
    return true;
  });
  return out;
}

}  // namespace mmkit::text
