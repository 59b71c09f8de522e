#include "mmkit/eval/caption_metrics.h"

#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "mmkit/core/error.h"
#include "mmkit/text/caption_vocab.h"

namespace mmkit {

namespace {

using Counts = std::map<Tokens, int64_t>;

// n-gram counts of one sentence for a single order n.
Counts ngrams(const Tokens& s, size_t n) {
  Counts c;
  for (size_t i = 0; i + n <= s.size(); ++i) ++c[Tokens(s.begin() + long(i), s.begin() + long(i + n))];
  return c;
}

void check_sizes(size_t cands, size_t refs, const char* what) {
  MMKIT_CHECK(cands == refs, what, ": ", cands, " candidates but ", refs, " reference sets");
}

}  // namespace

Tokens metric_tokens(const std::string& caption) {
  Tokens out;
  for (auto& w : text::CaptionVocab::split_words(caption)) {
    bool word = false;
    for (unsigned char c : w) word |= std::isalnum(c) || c >= 0x80;
    if (word) out.push_back(w);
  }
  return out;
}

BleuScore corpus_bleu(const std::vector<Tokens>& cands, const std::vector<std::vector<Tokens>>& refs) {
  check_sizes(cands.size(), refs.size(), "BLEU");
  int64_t matched[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0};
  BleuScore s;
  for (size_t i = 0; i < cands.size(); ++i) {
    MMKIT_CHECK(!refs[i].empty(), "BLEU: candidate ", i, " has no references");
    const Tokens& c = cands[i];
    // Closest reference length (ties: the shorter).
    int64_t c_len = int64_t(c.size()), best = -1;
    for (const Tokens& r : refs[i]) {
      int64_t r_len = int64_t(r.size());
      if (best < 0 || std::llabs(r_len - c_len) < std::llabs(best - c_len) ||
          (std::llabs(r_len - c_len) == std::llabs(best - c_len) && r_len < best))
        best = r_len;
    }
    s.candidate_length += c_len;
    s.reference_length += best;
    for (size_t n = 1; n <= 4; ++n) {
      Counts max_ref;
      for (const Tokens& r : refs[i])
        for (auto& [g, k] : ngrams(r, n)) max_ref[g] = std::max(max_ref[g], k);
      for (auto& [g, k] : ngrams(c, n)) {
        auto it = max_ref.find(g);
        matched[n - 1] += std::min(k, it == max_ref.end() ? int64_t(0) : it->second);
        total[n - 1] += k;
      }
    }
  }
  const double c = double(s.candidate_length), r = double(s.reference_length);
  s.brevity_penalty = c > r ? 1.0 : (c > 0 ? std::exp(1.0 - r / c) : 0.0);
  double log_sum = 0;
  bool zero = false;
  for (int n = 0; n < 4; ++n) {
    s.precision[n] = total[n] > 0 ? double(matched[n]) / double(total[n]) : 0.0;
    zero |= s.precision[n] == 0.0;
    log_sum += zero ? 0.0 : std::log(s.precision[n]);
    s.bleu[n] = zero ? 0.0 : s.brevity_penalty * std::exp(log_sum / double(n + 1));
  }
  return s;
}

double cider_d(const std::vector<Tokens>& cands, const std::vector<std::vector<Tokens>>& refs,
               std::vector<double>* per_image, double sigma) {
  check_sizes(cands.size(), refs.size(), "CIDEr-D");
  const size_t N = cands.size();
  if (per_image) per_image->assign(N, 0.0);
  if (N == 0) return 0.0;
  // Document frequency: in how many images' reference sets each n-gram occurs.
  std::map<Tokens, int64_t> df;
  for (const auto& rs : refs) {
    MMKIT_CHECK(!rs.empty(), "CIDEr-D: an image has no references");
    std::set<Tokens> seen;
    for (const Tokens& r : rs)
      for (size_t n = 1; n <= 4; ++n)
        for (auto& [g, k] : ngrams(r, n)) seen.insert(g);
    for (auto& g : seen) ++df[g];
  }
  const double log_images = std::log(double(N));
  // Per order n: weights g_k and the vector norm.
  struct Vec {
    std::map<Tokens, double> w[4];
    double norm[4] = {0, 0, 0, 0};
    int64_t length = 0;
  };
  auto vec = [&](const Tokens& s) {
    Vec v;
    v.length = int64_t(s.size());
    for (size_t n = 1; n <= 4; ++n) {
      for (auto& [g, k] : ngrams(s, n)) {
        auto it = df.find(g);
        double d = it == df.end() ? 1.0 : std::max(1.0, double(it->second));
        double w = double(k) * (log_images - std::log(d));
        v.w[n - 1][g] = w;
        v.norm[n - 1] += w * w;
      }
      v.norm[n - 1] = std::sqrt(v.norm[n - 1]);
    }
    return v;
  };
  double total = 0;
  for (size_t i = 0; i < N; ++i) {
    Vec c = vec(cands[i]);
    double score = 0;
    for (const Tokens& r : refs[i]) {
      Vec s = vec(r);
      double delta = double(c.length - s.length);
      double penalty = std::exp(-(delta * delta) / (2 * sigma * sigma));
      for (int n = 0; n < 4; ++n) {
        double dot = 0;
        for (auto& [g, wc] : c.w[n]) {
          auto it = s.w[n].find(g);
          if (it != s.w[n].end()) dot += std::min(wc, it->second) * it->second;
        }
        if (c.norm[n] > 0 && s.norm[n] > 0) score += penalty * dot / (c.norm[n] * s.norm[n]) / 4.0;
      }
    }
    double image = 10.0 * score / double(refs[i].size());
    if (per_image) (*per_image)[i] = image;
    total += image;
  }
  return total / double(N);
}

std::vector<SceneObject> parse_object_mentions(const Tokens& t) {
  static const std::set<std::string> colors = {"red", "green", "blue", "orange", "gray", "grey", "yellow"};
  auto shape = [](const std::string& w) -> std::string {
    if (w == "circle" || w == "circles") return "circle";
    if (w == "square" || w == "squares") return "square";
    return "";
  };
  std::vector<SceneObject> out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (!colors.count(t[i])) continue;
    for (size_t j = i + 1; j < t.size() && j <= i + 4 && !colors.count(t[j]); ++j) {
      std::string s = shape(t[j]);
      if (!s.empty()) {
        out.push_back({t[i] == "grey" ? "gray" : t[i], s});
        break;
      }
    }
  }
  return out;
}

ObjectF1 object_f1(const std::vector<Tokens>& cands, const std::vector<std::vector<SceneObject>>& scenes) {
  check_sizes(cands.size(), scenes.size(), "object F1");
  ObjectF1 f;
  for (size_t i = 0; i < cands.size(); ++i) {
    std::vector<SceneObject> left = scenes[i];
    f.objects += int64_t(left.size());
    for (const SceneObject& m : parse_object_mentions(cands[i])) {
      ++f.mentioned;
      for (auto it = left.begin(); it != left.end(); ++it)
        if (*it == m) {
          ++f.true_positives;
          left.erase(it);
          break;
        }
    }
  }
  f.precision = f.mentioned ? double(f.true_positives) / double(f.mentioned) : 0.0;
  f.recall = f.objects ? double(f.true_positives) / double(f.objects) : 0.0;
  f.f1 = f.precision + f.recall > 0 ? 2 * f.precision * f.recall / (f.precision + f.recall) : 0.0;
  return f;
}

}  // namespace mmkit
