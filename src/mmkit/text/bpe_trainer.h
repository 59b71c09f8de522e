// Learning CLIP-style BPE merges from a corpus (for models trained from scratch, whose tokenizer is
// then stored in the checkpoint; see ClipTokenizer::from_merges and infer/clip_runner.h).
//
//   std::vector<std::string> merges = mmkit::text::train_bpe_merges(captions, 2000);
//   auto tok = mmkit::text::ClipTokenizer::from_merges(merges);   // vocab 512 + 2000 + 2
//
// Same units as the tokenizer that will use the merges: texts go through pre_tokenize() (CLIP's
// cleanup, lowercasing and split), each piece starts as its UTF-8 bytes' byte_symbol()s with
// "</w>" on the last, and <|startoftext|>/<|endoftext|> pieces are left out (they are special
// ids). Each round merges the adjacent pair with the highest count over the corpus: every adjacent
// position of every distinct word, times the word's frequency (as Sennrich et al. and Hugging Face
// count, so "a a a" holds (a, a) twice), and merging replaces occurrences left to right ("aa a"),
// exactly as encoding will.
// Ties go to the pair (a, b) that is smallest comparing a, then b, byte-wise -- so the result
// depends only on the multiset of texts, not on their order or on hashing.
//
// Cost: texts are reduced to distinct words once; afterwards a round touches only the words that
// contain the merged pair, and pair counts are updated incrementally (lazy max-heap).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/text/clip_tokenizer.h"

namespace mmkit::text {

// Up to `num_merges` merges ("a b", rank order); fewer when no adjacent pair occurs at least
// `min_frequency` (>= 1) times. Throws on num_merges < 0, min_frequency < 1, or invalid UTF-8
// (naming the text's index).
std::vector<std::string> train_bpe_merges(const std::vector<std::string>& texts, int num_merges,
                                          int min_frequency = 2);

// A CLIP tokenizer over `num_merges` merges learned from `texts`; one line on `log` says how many
// merges, from how many texts, in how long, and the vocabulary size.
ClipTokenizer learn_clip_tokenizer(const std::vector<std::string>& texts, int num_merges, std::FILE* log);

}  // namespace mmkit::text
