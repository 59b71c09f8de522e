#include "mmkit/text/siglip_tokenizer.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "mmkit/core/error.h"
#include "mmkit/text/unicode.h"
#include "mmkit/text/utf8.h"

namespace mmkit::text {

namespace {

constexpr char32_t kUnderline = 0x2581;  // SentencePiece's "▁"

bool is_ascii_punctuation(char32_t c) {  // Python's string.punctuation
  return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

}  // namespace

std::string siglip_canonicalize(const std::string& utf8_text) {
  std::u32string in = utf8_decode(utf8_text), lowered;
  lowered.push_back(kUnderline);
  for (char32_t c : in) {
    if (c == kUnderline) c = U' ';
    // One character at a time: Python's str.lower() of a one-character string (no Final_Sigma
    // context); "." in transformers' pattern does not match "\n", which lower() keeps anyway.
    lowered += to_lower(std::u32string(1, c));
  }
  std::u32string out;
  bool pending_space = false;
  for (char32_t c : lowered) {
    if (is_ascii_punctuation(c)) continue;  // removed before whitespace is collapsed
    if (is_space(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out.push_back(U' ');  // leading whitespace is stripped
    pending_space = false;
    out.push_back(c);
  }
  return utf8_encode(out);  // trailing whitespace was never emitted: strip()
}

SiglipTokenizer SiglipTokenizer::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f, path, ": cannot read the SentencePiece tokenizer (a SigLIP model needs its spiece.model)");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_bytes(ss.str(), path);
}

SiglipTokenizer SiglipTokenizer::from_bytes(const std::string& model_bytes, const std::string& name) {
  SiglipTokenizer t;
  t.name_ = name;
  t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  {
    // SigLIP 2's Gemma model: "<eos>" and "<pad>", no "</s>". Loaded unchanged (GemmaTokenizer).
    sentencepiece::SentencePieceProcessor probe;
    const auto st = probe.LoadFromSerializedProto(model_bytes);
    MMKIT_CHECK(st.ok(), name, ": not a SentencePiece model (", st.ToString(), ")");
    const int unk = probe.unk_id(), eos = probe.PieceToId("<eos>"), pad = probe.PieceToId("<pad>");
    if (probe.PieceToId("</s>") == unk && eos != unk && pad != unk) {
      t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
      MMKIT_CHECK(t.sp_->LoadFromSerializedProto(model_bytes).ok(), name, ": not a SentencePiece model");
      t.gemma_ = true;
      t.eos_ = eos;
      t.pad_ = pad;
      return t;
    }
  }
  // transformers loads the model with normalizer_spec.add_dummy_prefix = False (MergeFrom). The
  // same override in protobuf's wire format: a second ModelProto field 3 (normalizer_spec, length 2)
  // holding NormalizerSpec field 3 (add_dummy_prefix, varint) = 0. A parser merges repeated
  // occurrences of a message field, so this is exactly MergeFrom, without protobuf headers. (With the
  // "<unk>" prefix of encode() the ids rarely depend on it: for the fixture's texts they do not.)
  const std::string patched = model_bytes + std::string("\x1a\x02\x18\x00", 4);
  const auto st = t.sp_->LoadFromSerializedProto(patched);
  MMKIT_CHECK(st.ok(), name, ": not a SentencePiece model (", st.ToString(), ")");
  const int unk = t.sp_->unk_id();
  t.eos_ = t.sp_->PieceToId("</s>");
  MMKIT_CHECK(t.eos_ != unk && t.eos_ >= 0, name, ": the SentencePiece model has no '</s>' piece (SigLIP's end of "
              "text) nor '<eos>' and '<pad>' (SigLIP 2's Gemma tokenizer)");
  t.pad_ = t.eos_;
  std::vector<int> ids;
  t.sp_->Encode("<unk>", &ids);
  t.unk_pieces_ = ids.size();
  return t;
}

std::vector<int32_t> SiglipTokenizer::encode(const std::string& utf8_text) const {
  std::vector<int> ids;
  if (gemma_) {
    const auto st = sp_->Encode(utf8_text, &ids);
    MMKIT_CHECK(st.ok(), name_, ": SentencePiece failed to encode a text (", st.ToString(), ")");
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  const auto st = sp_->Encode("<unk>" + siglip_canonicalize(utf8_text), &ids);
  MMKIT_CHECK(st.ok(), name_, ": SentencePiece failed to encode a text (", st.ToString(), ")");
  const size_t skip = ids.size() >= unk_pieces_ ? unk_pieces_ : 0;
  return std::vector<int32_t>(ids.begin() + std::ptrdiff_t(skip), ids.end());
}

std::vector<int32_t> SiglipTokenizer::encode_padded(const std::string& utf8_text, int length) const {
  MMKIT_CHECK(length >= 1, "SigLIP tokenizer: length must be at least 1, got ", length);
  std::vector<int32_t> ids = encode(utf8_text);
  if (ids.size() > size_t(length - 1)) ids.resize(size_t(length - 1));
  ids.push_back(eos_);
  ids.resize(size_t(length), pad_);  // SigLIP's pad_token is "</s>", Gemma's "<pad>"
  return ids;
}

int64_t SiglipTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

}  // namespace mmkit::text
