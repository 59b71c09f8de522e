// Fuzz target: the CLIP text pipeline — UTF-8 validation, HTML unescaping, Unicode whitespace and
// lower-casing, the pre-tokenizer split, byte-level BPE (ClipTokenizer::encode / encode_padded) and
// decode. Input: the text's bytes (invalid UTF-8 must be refused with mmkit::Error).
// Vocabulary: $MMKIT_FUZZ_CLIP_MERGES, else ../shared/clip/bpe_simple_vocab_16e6.txt.gz beside the
// source tree, else a small merges list generated here (so the target runs anywhere).
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "mmkit/text/clip_tokenizer.h"

using namespace mmkit;

namespace {

std::unique_ptr<text::ClipTokenizer> g_tok;

// Merges that build a few whole words left to right ("c a", "ca t</w>"), in the OpenAI file format:
// a header line, then "a b" per line, symbols in GPT-2's byte alphabet (ASCII letters are themselves).
std::string generated_merges() {
  std::string s = "#version: fuzz\n";
  const char* words[] = {"the", "photo", "of", "a", "cat", "dog", "diagram", "picture", "red", "ing", "tion"};
  for (const char* w : words) {
    std::string prefix(1, w[0]);
    std::string word(w);
    for (size_t k = 1; k < word.size(); ++k) {
      std::string next(1, word[k]);
      if (k + 1 == word.size()) next += "</w>";
      s += prefix + " " + next + "\n";
      prefix += word[k];
    }
  }
  return s;
}

std::string vocab_path() {
  if (const char* e = std::getenv("MMKIT_FUZZ_CLIP_MERGES")) return e;
  std::string shared = std::string(MMKIT_SOURCE_DIR_STR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";
  struct stat st;
  if (::stat(shared.c_str(), &st) == 0) return shared;
  std::string tmp = "/tmp/mmkit_fuzz_merges_" + std::to_string(getpid()) + ".txt.gz";
  gzFile f = gzopen(tmp.c_str(), "wb");
  if (!f) std::abort();
  std::string m = generated_merges();
  gzwrite(f, m.data(), unsigned(m.size()));
  gzclose(f);
  return tmp;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string path = vocab_path();
  g_tok = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_openai_merges(path));
  std::fprintf(stderr, "fuzz_tokenizer: vocabulary %s (%lld ids)\n", path.c_str(), (long long)g_tok->vocab_size());
  if (path.rfind("/tmp/mmkit_fuzz_merges_", 0) == 0) ::unlink(path.c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids;
  if (!fuzz::accepts([&] { ids = g_tok->encode(text); })) return 0;  // invalid UTF-8
  for (int32_t id : ids)
    if (id < 0 || id >= g_tok->vocab_size()) fuzz::violated("encode produced an id outside the vocabulary");
  std::string back = g_tok->decode(ids);  // ids from encode always decode

  std::vector<int32_t> padded = g_tok->encode_padded(text, 77);
  if (padded.size() != 77 || padded[0] != g_tok->sot()) fuzz::violated("encode_padded layout");
  // Truncation keeps the leading ids: the padded body is a prefix of encode()'s ids.
  size_t body = 1;
  while (body < padded.size() && padded[body] != g_tok->eot()) ++body;
  if (body == padded.size()) fuzz::violated("encode_padded without <|endoftext|>");
  for (size_t i = 1; i < body; ++i)
    if (i - 1 >= ids.size() || padded[i] != ids[i - 1]) fuzz::violated("encode_padded body is not a prefix of encode");

  (void)text::pre_tokenize(text);
  // Arbitrary ids: decode refuses unknown ones with mmkit::Error.
  std::vector<int32_t> raw(size / 4);
  for (size_t i = 0; i < raw.size(); ++i)
    raw[i] = int32_t(uint32_t(data[4 * i]) | uint32_t(data[4 * i + 1]) << 8 | uint32_t(data[4 * i + 2]) << 16 |
                     uint32_t(data[4 * i + 3]) << 24);
  fuzz::accepts([&] { g_tok->decode(raw); });
  return 0;
}
