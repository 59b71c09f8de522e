// Caption metrics on examples computed by hand (the arithmetic is in the
// comments): BLEU (Papineni et al. 2002), CIDEr-D (Vedantam et al. 2015, as
// in coco-caption) and the Sort-of-CLEVR object F1.
#include <gtest/gtest.h>

#include <cmath>

#include "mmkit/eval/caption_metrics.h"

using namespace mmkit;

namespace {
Tokens T(const std::string& s) { return metric_tokens(s); }
}  // namespace

TEST(CaptionMetrics, TokensAreLowercaseWordsWithoutPunctuation) {
  EXPECT_EQ(T("A red Circle, a blue square."), (Tokens{"a", "red", "circle", "a", "blue", "square"}));
  EXPECT_EQ(T("  "), Tokens{});
}

// Papineni et al.'s example of clipping: candidate "the the the the the the
// the", references "the cat is on the mat" / "there is a cat on the mat".
// "the" occurs at most twice in one reference, so p1 = 2/7.
TEST(CaptionMetrics, BleuClipsCountsByTheLargestReferenceCount) {
  BleuScore b = corpus_bleu({T("the the the the the the the")},
                            {{T("the cat is on the mat"), T("there is a cat on the mat")}});
  EXPECT_NEAR(b.precision[0], 2.0 / 7.0, 1e-12);
  // c = 7; reference lengths 6 and 7 -> closest r = 7 -> BP = 1.
  EXPECT_EQ(b.candidate_length, 7);
  EXPECT_EQ(b.reference_length, 7);
  EXPECT_DOUBLE_EQ(b.brevity_penalty, 1.0);
  EXPECT_NEAR(b.bleu[0], 2.0 / 7.0, 1e-12);
  EXPECT_EQ(b.bleu[1], 0.0);  // "the the" never occurs in a reference: p2 = 0
}

// One sentence:  candidate "the cat sat on the mat", reference "the cat is on the mat".
//   unigrams: the x2 (ref has 2), cat, sat (0), on, mat            -> p1 = 5/6
//   bigrams:  the cat, cat sat, sat on, on the, the mat; matches
//             "the cat", "on the", "the mat"                        -> p2 = 3/5
//   trigrams: only "on the mat" of 4 matches                        -> p3 = 1/4
//   4-grams:  none of 3                                             -> p4 = 0
//   c = r = 6 -> BP = 1.
//   BLEU-1 = 5/6, BLEU-2 = sqrt(5/6 * 3/5) = sqrt(1/2),
//   BLEU-3 = (5/6 * 3/5 * 1/4)^(1/3) = (1/8)^(1/3) = 1/2, BLEU-4 = 0.
TEST(CaptionMetrics, BleuSingleSentenceByHand) {
  BleuScore b = corpus_bleu({T("the cat sat on the mat")}, {{T("the cat is on the mat")}});
  EXPECT_NEAR(b.precision[0], 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(b.precision[1], 3.0 / 5.0, 1e-12);
  EXPECT_NEAR(b.precision[2], 1.0 / 4.0, 1e-12);
  EXPECT_EQ(b.precision[3], 0.0);
  EXPECT_NEAR(b.bleu[0], 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(b.bleu[1], std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(b.bleu[2], 0.5, 1e-12);
  EXPECT_EQ(b.bleu[3], 0.0);
}

// Corpus level: the sentence above plus candidate "a dog" with references
// "a dog runs" (3 words) and "the dog runs fast" (4).
//   closest reference length to 2 is 3 -> c = 6 + 2 = 8, r = 6 + 3 = 9,
//   BP = exp(1 - 9/8) = 0.8824969...
//   p1 = (5 + 2) / (6 + 2) = 7/8;  p2 = (3 + 1) / (5 + 1) = 2/3;
//   p3 = (1 + 0) / (4 + 0) = 1/4 (a 2-word sentence has no trigrams).
//   BLEU-1 = BP * 7/8 = 0.7721848;  BLEU-2 = BP * sqrt(7/8 * 2/3) = 0.6740181;
//   BLEU-3 = BP * (7/8 * 2/3 * 1/4)^(1/3) = 0.4645140.
// Corpus BLEU pools the counts: it is not the mean of sentence BLEUs.
TEST(CaptionMetrics, BleuCorpusPoolsCountsAndAppliesBrevityPenalty) {
  BleuScore b = corpus_bleu({T("the cat sat on the mat"), T("a dog")},
                            {{T("the cat is on the mat")}, {T("a dog runs"), T("the dog runs fast")}});
  EXPECT_EQ(b.candidate_length, 8);
  EXPECT_EQ(b.reference_length, 9);
  EXPECT_NEAR(b.brevity_penalty, std::exp(1.0 - 9.0 / 8.0), 1e-12);
  EXPECT_NEAR(b.bleu[0], 0.772184789761521, 1e-9);
  EXPECT_NEAR(b.bleu[1], 0.6740181427763298, 1e-9);
  EXPECT_NEAR(b.bleu[2], 0.464513981711853, 1e-9);
  EXPECT_EQ(b.bleu[3], 0.0);
}

TEST(CaptionMetrics, BleuTieInClosestReferenceLengthTakesTheShorter) {
  // c = 3; references of 2 and 4 words are equally close -> r = 2 -> BP = 1 (c > r).
  BleuScore b = corpus_bleu({T("a b c")}, {{T("a b"), T("a b c d")}});
  EXPECT_EQ(b.reference_length, 2);
  EXPECT_DOUBLE_EQ(b.brevity_penalty, 1.0);
}

// Two images, one reference each, so |I| = 2 and an n-gram found in one
// image's references has idf log(2/1) = log 2 (also one found nowhere:
// df is taken as max(1, 0) = 1).
//   image 1: candidate "red circle" = reference "red circle".
//     1-grams: both vectors (log2, log2) -> cosine 1; 2-grams: ("red circle": log2) -> 1;
//     no 3- or 4-grams -> 0. Same length -> penalty 1.
//     CIDEr-D = 10 * (1 + 1 + 0 + 0) / 4 = 5.
//   image 2: candidate "red square", reference "blue square".
//     1-grams: shared "square": log2 * log2 / (sqrt2 log2 * sqrt2 log2) = 1/2;
//     2-grams: nothing shared -> 0.  CIDEr-D = 10 * 0.5 / 4 = 1.25.
//   corpus: (5 + 1.25) / 2 = 3.125.
TEST(CaptionMetrics, CiderDByHand) {
  std::vector<double> per;
  double c = cider_d({T("red circle"), T("red square")}, {{T("red circle")}, {T("blue square")}}, &per);
  ASSERT_EQ(per.size(), 2u);
  EXPECT_NEAR(per[0], 5.0, 1e-12);
  EXPECT_NEAR(per[1], 1.25, 1e-12);
  EXPECT_NEAR(c, 3.125, 1e-12);
}

// Clipping and the length penalty, |I| = 2 again:
//   image A: candidate "red circle red circle", reference "red circle".
//     1-grams: candidate (red 2log2, circle 2log2), reference (log2, log2);
//       sum min(c, r) r = 2 (log2)^2; norms 2 sqrt2 log2 and sqrt2 log2 -> 2/4 = 0.5
//       (without the min it would be 4/4 = 1: repeating words does not pay).
//     2-grams: candidate ("red circle" 2log2, "circle red" log2), reference ("red circle" log2):
//       min(2log2, log2) log2 / (sqrt5 log2 * log2) = 1/sqrt5 = 0.4472136.
//     3-, 4-grams: the reference has none -> 0.
//     penalty: lengths 4 vs 2 -> exp(-(2^2) / (2 * 6^2)) = exp(-1/18) = 0.9459595.
//     CIDEr-D = 10 * 0.9459595 * (0.5 + 0.4472136) / 4 = 2.2400642.
//   image B: "blue square" = "blue square" -> 5.
//   corpus: (2.2400642 + 5) / 2 = 3.6200321.
TEST(CaptionMetrics, CiderDClipsRepeatsAndPenalisesLength) {
  std::vector<double> per;
  double c = cider_d({T("red circle red circle"), T("blue square")}, {{T("red circle")}, {T("blue square")}}, &per);
  EXPECT_NEAR(per[0], 2.2400641743510197, 1e-9);
  EXPECT_NEAR(per[1], 5.0, 1e-12);
  EXPECT_NEAR(c, 3.6200320871755096, 1e-9);
}

// Several references: the mean over references. Image 1 of CiderDByHand with
// a second reference "blue square" (which now also counts towards df):
//   df: red 1, circle 1, "red circle" 1, blue 2, square 2, "blue square" 2  (image 2 keeps "blue square")
//   vs "red circle": idf log2 for all its n-grams -> 1-gram cosine 1, 2-gram 1 -> 10 * 2/4 = 5
//   vs "blue square": no shared n-gram -> 0
//   image 1 = (5 + 0) / 2 = 2.5
TEST(CaptionMetrics, CiderDAveragesOverReferences) {
  std::vector<double> per;
  cider_d({T("red circle"), T("blue square")}, {{T("red circle"), T("blue square")}, {T("blue square")}}, &per);
  EXPECT_NEAR(per[0], 2.5, 1e-12);
  // Image 2: every n-gram of "blue square" is in both images' references:
  // idf = log(2/2) = 0, all weights 0 -> norms 0 -> 0 (consensus n-grams carry no information).
  EXPECT_EQ(per[1], 0.0);
}

TEST(CaptionMetrics, ObjectMentionsParse) {
  auto m = parse_object_mentions(T("a red circle at the top left and a blue square below it"));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (SceneObject{"red", "circle", -1, -1}));
  EXPECT_EQ(m[1], (SceneObject{"blue", "square"}));
  m = parse_object_mentions(T("the grey object is a square, the green one is round"));
  ASSERT_EQ(m.size(), 1u);  // "green ... round" names no shape
  EXPECT_EQ(m[0], (SceneObject{"gray", "square"}));
  // A colour whose shape word comes only after another colour is not a mention.
  m = parse_object_mentions(T("red and blue circles"));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], (SceneObject{"blue", "circle"}));
}

// Scene {red circle, blue circle, green square};
//   caption 1 "a red circle, a blue square and a green square": red circle (TP),
//     blue square (FP: blue is a circle), green square (TP)
//   caption 2 (scene {yellow square}) "a yellow square and a yellow square": TP + FP (repeat)
//   TP 3, mentioned 5, objects 4 -> P = 3/5, R = 3/4, F1 = 2PR/(P+R) = 0.9/1.35 = 2/3.
TEST(CaptionMetrics, ObjectF1ByHand) {
  ObjectF1 f = object_f1({T("a red circle, a blue square and a green square"), T("a yellow square and a yellow square")},
                         {{{"red", "circle"}, {"blue", "circle"}, {"green", "square"}}, {{"yellow", "square"}}});
  EXPECT_EQ(f.true_positives, 3);
  EXPECT_EQ(f.mentioned, 5);
  EXPECT_EQ(f.objects, 4);
  EXPECT_NEAR(f.precision, 0.6, 1e-12);
  EXPECT_NEAR(f.recall, 0.75, 1e-12);
  EXPECT_NEAR(f.f1, 2.0 / 3.0, 1e-12);
}

TEST(CaptionMetrics, MismatchedInputsAreErrors) {
  EXPECT_THROW(corpus_bleu({T("a")}, {}), std::exception);
  EXPECT_THROW(corpus_bleu({T("a")}, {{}}), std::exception);
  EXPECT_THROW(cider_d({T("a")}, {{}}), std::exception);
}
