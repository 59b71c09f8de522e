// Caption metrics, implemented from their published definitions.
//
//   auto cand = mmkit::metric_tokens("A red circle, a blue square.");   // {"a","red","circle","a","blue","square"}
//   mmkit::BleuScore b = mmkit::corpus_bleu(cands, refs);    // b.bleu[3] = BLEU-4
//   double c = mmkit::cider_d(cands, refs);
//
// Tokens: text::CaptionVocab::split_words (lower-cased words) without
// punctuation-only tokens, for candidates and references alike.
//
// BLEU-N (Papineni et al. 2002), corpus level: modified n-gram precisions
//   p_n = sum_C sum_g min(count_C(g), max_R count_R(g)) / sum_C sum_g count_C(g)
// over all candidates C (each n-gram's count clipped by its largest count in
// any one reference of that candidate), brevity penalty BP = 1 if c > r else
// exp(1 - r/c) with c the total candidate length and r the sum of each
// candidate's closest reference length (ties: the shorter), and
//   BLEU-N = BP * exp(sum_{n<=N} log(p_n) / N)   (0 if some p_n = 0; no smoothing).
//
// CIDEr-D (Vedantam et al. 2015, section 3 and the "D" variant of section
// 7.1), as in the coco-caption evaluation code that reported CIDEr-D numbers
// come from: for n = 1..4, each sentence is a vector of n-gram weights
//   g_k = tf_k * log(|I| / max(1, df_k))
// with tf the raw count in the sentence, |I| the number of images and df_k
// the number of images whose references contain n-gram k. (The paper writes
// tf normalised by the sentence's n-gram total; the cosine below cancels that
// except inside the clipping min, where coco-caption uses raw counts - we do
// the same so the numbers are comparable.) Per image, candidate c and
// references S:
//   CIDEr-D_n = 1/|S| sum_s exp(-(l_c - l_s)^2 / (2 sigma^2)) *
//               sum_k min(g_k(c), g_k(s)) g_k(s) / (||g(c)|| ||g(s)||)     (0 if a norm is 0)
//   CIDEr-D   = 10 * mean_n CIDEr-D_n,   sigma = 6, l = length in words;
// the corpus score is the mean over images.
//
// Object F1 (Sort-of-CLEVR): mentions are "<colour> ... <shape>" - a colour
// word followed, within the next four tokens and before any other colour
// word, by a shape word (circle(s), square(s)). Mentions are matched one to
// one against the scene's (colour, shape) objects; a repeated or wrong
// mention is a false positive, an object never mentioned correctly a false
// negative. Precision, recall and F1 are micro-averaged over the corpus.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mmkit/data/caption_jsonl.h"

namespace mmkit {

using Tokens = std::vector<std::string>;

Tokens metric_tokens(const std::string& caption);

struct BleuScore {
  double bleu[4] = {0, 0, 0, 0};       // BLEU-1..4
  double precision[4] = {0, 0, 0, 0};  // p_1..p_4
  double brevity_penalty = 0;
  int64_t candidate_length = 0, reference_length = 0;  // c and r
};

// candidates[i] is scored against references[i] (at least one each).
BleuScore corpus_bleu(const std::vector<Tokens>& candidates, const std::vector<std::vector<Tokens>>& references);

// Corpus CIDEr-D; per_image (optional) receives each image's score.
double cider_d(const std::vector<Tokens>& candidates, const std::vector<std::vector<Tokens>>& references,
               std::vector<double>* per_image = nullptr, double sigma = 6.0);

using data::SceneObject;  // (colour, shape), data/caption_jsonl.h

// "grey" is read as "gray"; plural shapes as singular.
std::vector<SceneObject> parse_object_mentions(const Tokens& caption);

struct ObjectF1 {
  int64_t true_positives = 0, mentioned = 0, objects = 0;
  double precision = 0, recall = 0, f1 = 0;
};

ObjectF1 object_f1(const std::vector<Tokens>& candidates, const std::vector<std::vector<SceneObject>>& scenes);

}  // namespace mmkit
