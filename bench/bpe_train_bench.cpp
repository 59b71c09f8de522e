// Time of train_bpe_merges (text/bpe_trainer.h) on two made-up caption corpora, and of encoding them
// with the result.
//
//   build/bpe_train_bench [--merges 2000] [--reps 3]
//
// templates: 60,000 captions of 10 classes x 4 synonyms x 12 colours/sizes x 20 templates
//            (a CIFAR-10-style training set's captions: few distinct words, heavy repetition).
// zipf:      100,000 captions of 6-14 words drawn Zipf(1.1) from 20,000 random pseudo-words
//            (a COCO-like vocabulary: many distinct words, a long tail).
// Reports the best of --reps runs for training, the number of merges learned, distinct texts, and
// encoding throughput with the learned tokenizer (encode_padded to 77, one thread).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "mmkit/text/bpe_trainer.h"
#include "mmkit/text/clip_tokenizer.h"

using namespace mmkit::text;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<std::string> template_captions(int n, uint64_t seed) {
  const std::vector<std::vector<std::string>> classes = {
      {"airplane", "plane", "jet", "aircraft"},  {"automobile", "car", "sedan", "vehicle"},
      {"bird", "sparrow", "finch", "songbird"},   {"cat", "kitten", "kitty", "tabby cat"},
      {"deer", "fawn", "stag", "doe"},            {"dog", "puppy", "hound", "labrador"},
      {"frog", "toad", "tree frog", "bullfrog"}, {"horse", "pony", "stallion", "mare"},
      {"ship", "boat", "vessel", "cargo ship"},   {"truck", "lorry", "pickup truck", "dump truck"}};
  const std::vector<std::string> adj = {"",       "small ", "large ", "red ",   "blue ",  "white ",
                                        "black ", "brown ", "green ", "young ", "old ",   "wet "};
  const std::vector<std::string> tmpl = {
      "a photo of a {}.",          "a blurry photo of a {}.",    "a black and white photo of the {}.",
      "a low resolution photo of a {}.", "a cropped photo of the {}.", "a close-up photo of a {}.",
      "a bright photo of a {}.",   "a dark photo of the {}.",    "a photo of my {}.",
      "a photo of the cool {}.",   "a pixelated photo of a {}.", "a jpeg corrupted photo of a {}.",
      "art of the {}.",            "a drawing of a {}.",         "a painting of the {}.",
      "a photo of a small {}.",    "a photo of one {}.",         "there is a {} in this picture",
      "itap of a {}.",             "a {} on a sunny day, outdoors"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  out.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    const auto& syn = classes[rng() % classes.size()];
    std::string t = tmpl[rng() % tmpl.size()];
    t.replace(t.find("{}"), 2, adj[rng() % adj.size()] + syn[rng() % syn.size()]);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::string> zipf_captions(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* letters = "etaoinshrdlcumwfgypbvkjxqz";  // roughly English letter frequencies
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  while (int(words.size()) < vocab) {
    std::string w;
    int len = 2 + int(rng() % 9);
    for (int k = 0; k < len; ++k) {
      double u = std::uniform_real_distribution<double>(0, 1)(rng);
      w.push_back(letters[int(26 * u * u)]);  // skew towards the frequent letters
    }
    if (seen.insert(w).second) words.push_back(w);
  }
  std::vector<double> cdf(static_cast<size_t>(vocab));
  double s = 0;
  for (int r = 0; r < vocab; ++r) cdf[size_t(r)] = (s += 1.0 / std::pow(r + 1, 1.1));
  std::vector<std::string> out;
  out.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    int len = 6 + int(rng() % 9);
    std::string t;
    for (int k = 0; k < len; ++k) {
      double u = std::uniform_real_distribution<double>(0, s)(rng);
      size_t r = size_t(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      if (k) t += ' ';
      t += words[std::min(r, words.size() - 1)];
    }
    t += (i % 3 == 0) ? "." : "";
    out.push_back(std::move(t));
  }
  return out;
}

void bench(const char* name, const std::vector<std::string>& texts, int merges, int reps) {
  std::unordered_set<std::string> distinct(texts.begin(), texts.end());
  double best = 1e30;
  std::vector<std::string> m;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    m = train_bpe_merges(texts, merges);
    best = std::min(best, seconds_since(t0));
  }
  ClipTokenizer tok = ClipTokenizer::from_merges(m);
  auto t0 = Clock::now();
  size_t tokens = 0;
  for (const auto& t : texts) {
    auto ids = tok.encode_padded(t, 77);
    tokens += size_t(std::find(ids.begin() + 1, ids.end(), tok.eot()) - ids.begin()) - 1;
  }
  double enc = seconds_since(t0);
  std::printf("%-9s %7zu captions (%6zu distinct)  train %4zu merges: %.3f s (best of %d)  "
              "encode: %.3f s (%.1f tokens/caption)\n",
              name, texts.size(), distinct.size(), m.size(), best, reps, enc, double(tokens) / texts.size());
}

}  // namespace

int main(int argc, char** argv) {
  int merges = 2000, reps = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--merges") && i + 1 < argc) merges = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--merges N] [--reps R]\n", argv[0]);
      return 2;
    }
  }
  bench("templates", template_captions(60000, 1), merges, reps);
  bench("zipf", zipf_captions(100000, 20000, 2), merges, reps);
  return 0;
}
