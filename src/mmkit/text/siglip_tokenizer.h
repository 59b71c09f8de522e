// SigLIP's tokenizer: a SentencePiece model (`spiece.model`, through Debian's libsentencepiece)
// applied as transformers' slow SiglipTokenizer does (models/siglip/tokenization_siglip.py):
//
//   auto tok = mmkit::text::SiglipTokenizer::from_file("siglip/spiece.model");
//   std::vector<int32_t> ids = tok.encode_padded("A photo of a cat.", 64);  // pieces, </s>, </s> padding
//
// Pipeline (on code points, as Python's str):
//   1. "▁" (U+2581) in the text becomes " ", and "▁" is prepended (tokenize())
//   2. lowercase one character at a time (do_lower_case: PreTrainedTokenizer.tokenize lowercases
//      with re.sub("(.+?)", lower): a lone "Σ" is "σ", U+0130 is "i̇")
//   3. canonicalize_text: ASCII punctuation (string.punctuation) removed, runs of whitespace
//      (str.isspace) -> " ", strip
//   4. SentencePiece with add_dummy_prefix forced off (get_spm_processor), encoding "<unk>" + text
//      and dropping the pieces of "<unk>" (_tokenize), so the leading "▁" survives
//   5. truncation to length - 1 ids, "</s>" appended, padded with "</s>" (pad_token) to `length`
//      (tokenizer(..., padding="max_length", truncation=True), model_max_length 64)
// Not covered: special-token strings ("</s>", "<unk>") inside the text, which transformers splits
// out before step 3; here they are ordinary text.
//
// SigLIP 2 (fixed resolution, model_type "siglip" with Gemma's `tokenizer.model`): a model whose
// pieces have "<eos>" and "<pad>" but no "</s>" is applied as transformers' GemmaTokenizerFast is
// set up for SigLIP 2 (models/siglip2/convert_siglip2_to_hf.py get_siglip2_tokenizer:
// add_bos_token=False, add_eos_token=True, padding_side="right"; GemmaTokenizer loads the model
// as it is): the text goes to SentencePiece unchanged (no lowercasing — the model card asks callers
// to lowercase —, no punctuation removal, the model's own normalizer), truncated to length - 1
// pieces, "<eos>" appended, padded with "<pad>" to `length` (64: padding="max_length").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mmkit::text {

class SiglipTokenizer {
 public:
  // Throws naming the file when it is missing or not a SentencePiece model, or has no "</s>".
  static SiglipTokenizer from_file(const std::string& spiece_model);
  static SiglipTokenizer from_bytes(const std::string& model_bytes, const std::string& name);

  // Steps 1-4: the ids of the pieces, without "</s>".
  std::vector<int32_t> encode(const std::string& utf8_text) const;
  // Step 5: exactly `length` ids.
  std::vector<int32_t> encode_padded(const std::string& utf8_text, int length = 64) const;
  int64_t vocab_size() const;  // pieces in the model (ids 0..vocab_size-1)
  int32_t eos() const { return eos_; }
  int32_t pad() const { return pad_; }
  bool gemma() const { return gemma_; }  // SigLIP 2's Gemma tokenizer (see above)
  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string name_;
  int32_t eos_ = 1, pad_ = 1;  // SigLIP pads with "</s>", Gemma with "<pad>"
  bool gemma_ = false;
  size_t unk_pieces_ = 0;  // pieces of "<unk>" as text, dropped from the front of every encoding
};

// Steps 1-3, as UTF-8 (what SentencePiece receives after the "<unk>" prefix).
std::string siglip_canonicalize(const std::string& utf8_text);

}  // namespace mmkit::text
