// BPE training (text/bpe_trainer.h) and tokenizers built from merges (ClipTokenizer::from_merges,
// merges_text round trip): a hand-counted corpus, determinism, encode/decode round trips with byte
// fallback, malformed merges, and identity with OpenAI's tokenizer when ../shared/clip is present.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <random>

#include "mmkit/core/error.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/text/clip_tokenizer.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::text;

namespace {

const std::string kMerges = std::string(MMKIT_SOURCE_DIR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Sennrich et al.'s example, with case and a special token the trainer must look through.
// Words ("</w>" marks the last symbol):
//   low x5     l o w</w>          lower x2   l o w e r</w>
//   newest x6  n e w e s t</w>    widest x3  w i d e s t</w>
const std::vector<std::string> kSennrich = {"low low LOW", "Low low <|endoftext|>", "lower lower",
                                            "newest newest newest", "newest newest newest",
                                            "widest widest widest"};

// Captions of a tiny made-up dataset: a few classes, synonyms, colours and templates.
std::vector<std::string> captions(int n, uint64_t seed) {
  const std::vector<std::string> things = {"cat", "kitten", "dog", "puppy", "red car", "truck", "airplane",
                                           "jet", "ship", "boat", "horse", "frog", "deer", "bird"};
  const std::vector<std::string> adj = {"", "small ", "large ", "blue ", "green ", "dark ", "shiny "};
  const std::vector<std::string> tmpl = {"a photo of a {}.", "a blurry photo of the {}", "A close-up of a {}!",
                                         "there is a {} in the picture", "my {}'s picture", "{} on grass, 2 of them"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t = tmpl[rng() % tmpl.size()];
    t.replace(t.find("{}"), 2, adj[rng() % adj.size()] + things[rng() % things.size()]);
    out.push_back(t);
  }
  return out;
}

std::string spaced_pieces(const std::string& text) {
  std::string s;
  for (const auto& p : pre_tokenize(text)) s += p + " ";
  return s;
}

}  // namespace

TEST(BpeTrainer, HandCountedMerges) {
  // Round 0: (e,s) 6+3=9 and (s,t</w>) 9 tie as the highest; "e" < "s" -> "e s".
  // Round 1: (es,t</w>) 9.   Round 2: (l,o) 5+2=7.
  // Round 3: (n,e), (e,w), (w,est</w>) all 6 (newest); (w,e) is 2 now (lower only). "e" first.
  // Round 4: (n,ew) 6 and (ew,est</w>) 6; "ew" < "n".   Round 5: (n,ewest</w>) 6.
  // Round 6: (lo,w</w>) 5.   Round 7: (d,est</w>), (i,d), (w,i) all 3; "d" first.
  // Round 8: (i,dest</w>) 3 and (w,i) 3; "i" < "w".   Round 9: (w,idest</w>) 3.
  // Rounds 10-12: (lo,w), (w,e), (e,r</w>) all 2 -> "e r</w>", then (lo,w) and (w,er</w>) 2:
  //   "lo" < "w" -> "lo w", then "low er</w>". No pair is left.
  const std::vector<std::string> want = {"e s",      "es t</w>",   "l o",         "e w",      "ew est</w>",
                                         "n ewest</w>", "lo w</w>", "d est</w>",  "i dest</w>", "w idest</w>",
                                         "e r</w>",  "lo w",       "low er</w>"};
  EXPECT_EQ(train_bpe_merges(kSennrich, 100), want);
  EXPECT_EQ(train_bpe_merges(kSennrich, 100, 1), want);  // every pair left had count >= 2 anyway
  // min_frequency 3 stops before the count-2 rounds, num_merges caps the list.
  EXPECT_EQ(train_bpe_merges(kSennrich, 100, 3), std::vector<std::string>(want.begin(), want.begin() + 10));
  EXPECT_EQ(train_bpe_merges(kSennrich, 4), std::vector<std::string>(want.begin(), want.begin() + 4));
  EXPECT_TRUE(train_bpe_merges(kSennrich, 0).empty());
  EXPECT_TRUE(train_bpe_merges({}, 10).empty());

  // Encoding applies merges by rank: "lowest" = l o w e s t</w> -> (0) l o w es t</w> -> (1)
  // l o w est</w> -> (2) lo w est</w> -> (11) low est</w>. Merge k has id 512 + k.
  ClipTokenizer tok = ClipTokenizer::from_merges(want);
  EXPECT_EQ(tok.vocab_size(), 512 + 13 + 2);
  EXPECT_EQ(tok.sot(), 525);
  EXPECT_EQ(tok.eot(), 526);
  EXPECT_EQ(tok.encode("lowest"), (std::vector<int32_t>{512 + 11, 512 + 1}));
  EXPECT_EQ(tok.token(512 + 11), "low");
  EXPECT_EQ(tok.encode("Newest, widest"), (std::vector<int32_t>{512 + 5, tok.encode(",")[0], 512 + 9}));
  EXPECT_EQ(tok.merges(), want);
}

// The textbook algorithm: every round recounts all pairs of all words and merges the best.
std::vector<std::string> naive_bpe(const std::vector<std::string>& texts, int num_merges, int min_frequency) {
  std::map<std::string, int64_t> freq;
  for (const auto& t : texts)
    for (const auto& p : pre_tokenize(t))
      if (p != "<|startoftext|>" && p != "<|endoftext|>") ++freq[p];
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [p, n] : freq) {
    std::vector<std::string> w;
    for (unsigned char c : p) w.push_back(byte_symbol(c));
    w.back() += "</w>";
    words.emplace_back(w, n);
  }
  std::vector<std::string> merges;
  while (int(merges.size()) < num_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> count;  // ordered: ties -> smallest pair
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) count[{w[i], w[i + 1]}] += n;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_n = 0;
    for (const auto& [pr, n] : count)
      if (n > best_n) best = &pr, best_n = n;
    if (!best || best_n < min_frequency) break;
    const auto [a, b] = *best;
    merges.push_back(a + " " + b);
    for (auto& [w, n] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) out.push_back(a + b), i += 2;
        else out.push_back(w[i++]);
      }
      w = out;
    }
  }
  return merges;
}

TEST(BpeTrainer, MatchesNaiveRecountingTrainer) {
  // Captions plus repeated letters (overlapping pairs: "aaaa" holds (a, a) three times), digits,
  // punctuation runs and non-ASCII words, so incremental counting meets its corner cases.
  std::vector<std::string> texts = captions(400, 17);
  std::mt19937_64 rng(5);
  const std::vector<std::string> odd = {"aaaa", "aaa", "aa", "abab", "ababab", "baaab", "!!!", "...?!",
                                        "1984", "caf\u00e9", "\u00e9\u00e9\u00e9", "na\u00efve", "\U0001f431\U0001f431"};
  for (int i = 0; i < 300; ++i) {
    std::string t;
    for (int k = 0; k < 5; ++k) t += odd[rng() % odd.size()] + (k < 4 ? " " : "");
    texts.push_back(t);
  }
  for (int min_freq : {1, 2, 5}) {
    auto want = naive_bpe(texts, 250, min_freq);
    EXPECT_EQ(train_bpe_merges(texts, 250, min_freq), want) << "min_frequency " << min_freq;
    EXPECT_GT(want.size(), 100u);
  }
}

TEST(BpeTrainer, DeterministicAndOrderIndependent) {
  auto texts = captions(3000, 7);
  auto a = train_bpe_merges(texts, 300);
  EXPECT_EQ(train_bpe_merges(texts, 300), a);
  std::shuffle(texts.begin(), texts.end(), std::mt19937_64(99));
  EXPECT_EQ(train_bpe_merges(texts, 300), a);
  EXPECT_GT(a.size(), 50u);
  EXPECT_LE(a.size(), 300u);
  // Frequent whole words become single tokens, as BPE should.
  ClipTokenizer tok = ClipTokenizer::from_merges(a);
  EXPECT_EQ(tok.encode("photo").size(), 1u);
  EXPECT_EQ(tok.encode("a photo of a cat.").size(), 6u);
}

TEST(BpeTrainer, RoundTripsTrainingAndUnseenText) {
  auto texts = captions(2000, 3);
  ClipTokenizer tok = ClipTokenizer::from_merges(train_bpe_merges(texts, 200));
  ASSERT_EQ(tok.eot(), tok.vocab_size() - 1);  // CLIP pools at argmax(id)
  ASSERT_EQ(tok.sot(), tok.vocab_size() - 2);
  std::vector<std::string> unseen = {
      "Hello, World! It's 2024 and we're testing a tokenizer...", "CAF\u00c9 cr\u00e8me br\u00fbl\u00e9e \u2013 Z\u00fcrich 3.14159",
      "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 and \u041f\u0440\u0438\u0432\u0435\u0442", "I \u2764\ufe0f my \U0001f431 &amp; \U0001f680!",
      "zebra quokka xylophone", "tabs\tand\nnewlines   everywhere", ""};
  std::vector<std::string> all = texts;
  all.insert(all.end(), unseen.begin(), unseen.end());
  for (const auto& t : all) {
    std::vector<int32_t> ids = tok.encode(t);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.sot()) << t << ": id " << id;
    // The reference's decode: tokens concatenated, "</w>" -> " " (each piece gets a space).
    EXPECT_EQ(tok.decode(ids), spaced_pieces(t)) << t;
  }
  // A training caption takes fewer tokens than bytes; an unseen emoji falls back to bytes.
  EXPECT_LT(tok.encode(texts[0]).size(), clean_text(texts[0]).size() / 2);
  EXPECT_EQ(tok.encode("\U0001f431").size(), 4u);
  std::vector<int32_t> padded = tok.encode_padded("a photo of a cat.", 16);
  EXPECT_EQ(padded[0], tok.sot());
  EXPECT_EQ(std::max_element(padded.begin(), padded.end()) - padded.begin(),
            int64_t(tok.encode("a photo of a cat.").size() + 1));
}

TEST(BpeTrainer, MergesTextRoundTrip) {
  auto merges = train_bpe_merges(captions(1000, 5), 120);
  ClipTokenizer tok = ClipTokenizer::from_merges(merges);
  std::string text = tok.merges_text();
  EXPECT_EQ(text.substr(0, 22), "#version: mmkit-bpe 1\n");
  EXPECT_EQ(size_t(std::count(text.begin(), text.end(), '\n')), merges.size() + 1);
  ClipTokenizer back = ClipTokenizer::from_merges_text(text);
  EXPECT_EQ(back.merges(), merges);
  EXPECT_EQ(back.merges_text(), text);
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  for (const auto& t : captions(50, 11)) EXPECT_EQ(back.encode_padded(t, 20), tok.encode_padded(t, 20));
  for (int32_t id = 0; id < tok.vocab_size(); ++id) ASSERT_EQ(back.token(id), tok.token(id));
  // Zero merges: bytes only, still a working tokenizer.
  ClipTokenizer bytes = ClipTokenizer::from_merges_text("#version: mmkit-bpe 1\n");
  EXPECT_EQ(bytes.vocab_size(), 514);
  EXPECT_EQ(bytes.encode("ab"), (std::vector<int32_t>{bytes.encode("a")[0] - 256, bytes.encode("b")[0]}));
  EXPECT_EQ(bytes.merges_text(), "#version: mmkit-bpe 1\n");
}

TEST(BpeTrainer, MalformedMergesNameTheProblem) {
  std::string e = test::error_of([] { ClipTokenizer::from_merges({"a b", "ab"}); });
  EXPECT_NE(e.find("BPE merge 1"), std::string::npos) << e;
  EXPECT_NE(e.find("two symbols"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges({"a b", "ab c", "x yz"}); });
  EXPECT_NE(e.find("BPE merge 2"), std::string::npos) << e;
  EXPECT_NE(e.find("'yz'"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges({"a  b"}); });
  EXPECT_NE(e.find("BPE merge 0"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges({"a b c"}); });
  EXPECT_NE(e.find("BPE merge 0"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges({" a"}); });
  EXPECT_NE(e.find("BPE merge 0"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges({"a\xc3 b"}); });  // not a symbol of the alphabet
  EXPECT_NE(e.find("BPE merge 0"), std::string::npos) << e;

  e = test::error_of([] { ClipTokenizer::from_merges_text("#version: 0.2\na b\n"); });
  EXPECT_NE(e.find("first line"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges_text(""); });
  EXPECT_NE(e.find("first line"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges_text("#version: mmkit-bpe 1\na b\n\nab c\n"); });
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges_text("#version: mmkit-bpe 1\na b\nab q\nab cd\n"); });
  EXPECT_NE(e.find("line 4"), std::string::npos) << e;
  EXPECT_NE(e.find("'cd'"), std::string::npos) << e;
  e = test::error_of([] { ClipTokenizer::from_merges_text("#version: mmkit-bpe 1\r\na b\n"); });
  EXPECT_NE(e.find("first line"), std::string::npos) << e;
}

TEST(BpeTrainer, BadArguments) {
  EXPECT_NE(test::error_of([] { train_bpe_merges({"a"}, -1); }).find("num_merges"), std::string::npos);
  EXPECT_NE(test::error_of([] { train_bpe_merges({"a"}, 5, 0); }).find("min_frequency"), std::string::npos);
  std::string e = test::error_of([] { train_bpe_merges({"fine", "also fine", "bad \xff byte"}, 5); });
  EXPECT_NE(e.find("text 2"), std::string::npos) << e;
}

TEST(BpeTrainer, FromOpenAiMergesListGivesOpenAiIds) {
  if (!exists(kMerges)) GTEST_SKIP() << "CLIP merges file not found: " << kMerges << " (shared data)";
  ClipTokenizer openai = ClipTokenizer::from_openai_merges(kMerges);
  ASSERT_EQ(openai.merges().size(), 48894u);
  EXPECT_EQ(openai.merges()[0], "i n");
  ClipTokenizer rebuilt = ClipTokenizer::from_merges(openai.merges());
  ClipTokenizer via_text = ClipTokenizer::from_merges_text(openai.merges_text());
  ASSERT_EQ(rebuilt.vocab_size(), 49408);
  EXPECT_EQ(rebuilt.sot(), 49406);
  EXPECT_EQ(rebuilt.eot(), 49407);
  for (int32_t id = 0; id < openai.vocab_size(); ++id) {
    ASSERT_EQ(rebuilt.token(id), openai.token(id)) << "id " << id;
    ASSERT_EQ(via_text.token(id), openai.token(id)) << "id " << id;
  }
  std::vector<std::string> texts = captions(200, 1);
  texts.insert(texts.end(), {"Hello, World! It's 2024 and we're testing CLIP's tokenizer...",
                             "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001f431 &amp; caf\u00e9",
                             "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis"});
  for (const auto& t : texts) {
    EXPECT_EQ(rebuilt.encode_padded(t), openai.encode_padded(t)) << t;
    EXPECT_EQ(via_text.encode_padded(t), openai.encode_padded(t)) << t;
  }
  EXPECT_EQ(rebuilt.encode_padded("a photo of a cat.")[2], 1125);  // "photo</w>"
}
