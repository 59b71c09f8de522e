#include "mmkit/infer/vqa_answer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "mmkit/autograd/graph.h"

namespace mmkit {

QuestionProblem check_question(const Vqa& m, const std::string& question) {
  QuestionProblem p;
  try {
    m.tokenizer.encode(question, m.cfg.max_question_len);
    return p;
  } catch (const Error& e) {
    p.message = e.what();
  }
  std::vector<std::string> ws;
  try {
    ws = text::WordTokenizer::words(question);
  } catch (const Error&) {
    p.kind = QuestionProblem::bad_text;
    return p;
  }
  if (ws.empty()) {
    p.kind = QuestionProblem::empty;
    return p;
  }
  for (auto& w : ws)
    if (!m.tokenizer.contains(w)) {
      p.kind = QuestionProblem::unknown_word;
      p.word = w;
      return p;
    }
  p.kind = QuestionProblem::too_long;
  return p;
}

VqaAnswer answer_question(Vqa& m, const Image& img, const std::string& question, std::vector<PatchAttention>* maps,
                          int top_k) {
  VqaBatch b = make_vqa_batch(m, {img}, {0}, {question});  // tokenising first: word errors before compute
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  VqaProbes probes;
  Var logits = vqa_forward(g, m, b, maps ? &probes : nullptr);
  const int64_t K = int64_t(m.cfg.answers.size());
  const float* L = g.data(logits);
  const float mx = *std::max_element(L, L + K);
  std::vector<double> p(static_cast<size_t>(K));
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += p[size_t(k)] = std::exp(double(L[k]) - mx);
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return p[size_t(a)] > p[size_t(c)]; });
  VqaAnswer a;
  a.answer = m.cfg.answers[size_t(order[0])];
  a.probability = float(p[size_t(order[0])] / s);
  for (int64_t i = 0; i < std::min<int64_t>(std::max(top_k, 1), K); ++i)
    a.top.push_back({m.cfg.answers[size_t(order[size_t(i)])], float(p[size_t(order[size_t(i)])] / s)});
  if (maps) {
    maps->clear();
    const int64_t T = b.tokens.dim(1);
    for (const Tensor& t : probes.fusion.text_to_image) {  // [1, H, T, P]
      const int64_t H = t.dim(1), P = t.dim(3);
      PatchAttention pa;
      pa.grid = int(m.cfg.grid());
      pa.map.assign(size_t(P), 0.f);
      int64_t words = 0;
      for (int64_t w = 0; w < T; ++w) {
        if (b.pad.ptr<uint8_t>()[w]) continue;
        ++words;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t q = 0; q < P; ++q) pa.map[size_t(q)] += t.f32()[(h * T + w) * P + q];
      }
      for (float& v : pa.map) v /= float(std::max<int64_t>(1, words * H));
      maps->push_back(std::move(pa));
    }
    if (m.cfg.hop_heads > 0) {  // per head: where hop 1 found X, where hop 2 looked from there
      const int G = int(m.hop.cfg.grid);
      const int64_t H = m.hop.cfg.heads, P = int64_t(G) * G;
      for (int64_t h = 0; h < H; ++h)
        for (int hop = 0; hop < 2; ++hop) {
          const Tensor& t = hop == 0 ? probes.hop.find : probes.hop.relate;  // [1, H, P]
          PatchAttention pa;
          pa.grid = G;
          pa.map.assign(t.f32() + h * P, t.f32() + (h + 1) * P);
          const bool nearest = m.hop.beta.value.f32()[h] >= 0.f;
          pa.label = "head " + std::to_string(h) + (hop == 0 ? ": find" : nearest ? ": nearest" : ": furthest");
          maps->push_back(std::move(pa));
        }
    }
  }
  return a;
}

}  // namespace mmkit
