// CLIP's byte-level BPE tokenizer, id-for-id identical to OpenAI CLIP's simple_tokenizer.py +
// clip.tokenize(truncate=True) (with ftfy.fix_text treated as the identity).
//
//   auto tok = mmkit::text::ClipTokenizer::from_openai_merges("bpe_simple_vocab_16e6.txt.gz");
//   std::vector<int32_t> ids = tok.encode_padded("a photo of a cat.");   // 77 ids
//   // ids = 49406 320 1125 539 320 2368 269 49407 0 0 ...; pooled token at argmax(ids)
//
// Pipeline (reference behaviour, all on code points like Python's str):
//   1. html.unescape twice (full HTML5 table, html_unescape.h)
//   2. runs of str.isspace() characters -> one ' ', then strip
//   3. str.lower() (all of Unicode, incl. final sigma; unicode.h)
//   4. split with  <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
//      [^\s\p{L}\p{N}]+  (regex module, IGNORECASE); a piece equal to "<|startoftext|>" or
//      "<|endoftext|>" becomes that special id
//   5. each piece's UTF-8 bytes -> GPT-2 bytes_to_unicode symbols, "</w>" appended to the last,
//      then merges applied lowest rank first (all occurrences of a pair, left to right)
// Vocabulary: 256 byte symbols (bytes_to_unicode order), the same with "</w>", one token per merge,
// then <|startoftext|> (49406) and <|endoftext|> (49407).
//
// Thread safety: all methods are const and may be called concurrently; copies share the
// vocabulary and the per-word BPE cache.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mmkit::text {

class ClipTokenizer {
 public:
  // The merges file OpenAI CLIP and OpenCLIP ship (gzip'd text: a header line, then "a b" per
  // line). Like the reference, uses the first 49152-256-2 = 48894 merges.
  static ClipTokenizer from_openai_merges(const std::string& gz_path);
  // Hugging Face files: vocab.json (token -> id, must contain every byte symbol with and without
  // "</w>", every merge result, and both special tokens) and merges.txt (first line skipped as
  // HF does, then at most 48894 merges).
  static ClipTokenizer from_hf_files(const std::string& vocab_json, const std::string& merges_txt);
  // A tokenizer from merges alone ("a b" in rank order, symbols in the bytes_to_unicode alphabet
  // with "</w>" ending a word, e.g. from train_bpe_merges or another tokenizer's merges()). The
  // vocabulary is laid out exactly as OpenAI's: 256 byte symbols, the same with "</w>", one token
  // per merge, <|startoftext|>, <|endoftext|> -- so eot() == vocab_size() - 1 and CLIP's pooling
  // at argmax(id) still finds the end of the text; from_merges(openai.merges()) gives OpenAI's
  // ids. Every merge must be two symbols separated by one space, each a byte symbol (with or
  // without "</w>") or the result of an earlier merge; otherwise throws naming the merge index.
  static ClipTokenizer from_merges(const std::vector<std::string>& merges);
  // merges_text(): "#version: mmkit-bpe 1\n" then one merge per line, each ending in "\n" (symbols
  // never contain whitespace). from_merges_text(merges_text()) rebuilds the same tokenizer and
  // round-trips the text exactly; errors name the line.
  static ClipTokenizer from_merges_text(const std::string& text);
  std::string merges_text() const;
  // The merges in rank order: for OpenAI/HF files the (at most 48894) merges read from the file,
  // for from_merges the list given.
  const std::vector<std::string>& merges() const;

  // BPE ids without <|startoftext|>/<|endoftext|>. Throws mmkit::Error
  // "text is not valid UTF-8 at byte N" on invalid input.
  std::vector<int32_t> encode(const std::string& utf8_text) const;
  // clip.tokenize: <|startoftext|> ids... <|endoftext|>, zero-padded to context_length (>= 2);
  // longer texts are truncated so that <|endoftext|> stays last.
  std::vector<int32_t> encode_padded(const std::string& text, int context_length = 77) const;
  // Concatenated token bytes with "</w>" -> " ", invalid UTF-8 replaced by U+FFFD (reference
  // decode; special tokens and padding ids are decoded like any other id, so strip them first).
  // Throws on ids outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t sot() const;         // <|startoftext|>
  int32_t eot() const;         // <|endoftext|>
  int64_t vocab_size() const;  // max id + 1 (49408 for CLIP)
  // Vocabulary string of an id in bytes_to_unicode form (e.g. "cat</w>"); throws if unknown.
  std::string token(int32_t id) const;

  struct Impl;

 private:
  explicit ClipTokenizer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// The bytes_to_unicode symbol of one byte as UTF-8 (e.g. 'a' -> "a", ' ' -> U+0120 "Ġ"); a word of
// n bytes starts BPE as n such symbols with "</w>" appended to the last.
std::string byte_symbol(uint8_t byte);

// Steps 1-3 of the pipeline (what the reference feeds its regex), as UTF-8.
std::string clean_text(const std::string& utf8_text);
// Steps 1-4: the pieces BPE sees, as UTF-8.
std::vector<std::string> pre_tokenize(const std::string& utf8_text);

}  // namespace mmkit::text
