// Caption generation (infer/caption_generate.h): the inference-only decoder
// against the autograd model forward (which tests/test_decoder_parity.cpp
// ties to PyTorch), the KV cache against the naive loop (acceptance 1:
// identical tokens, greedy and beam), beam search against exhaustive search,
// and the attention maps.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/parallel.h"
#include "mmkit/ops/attention.h"
#include "mmkit/infer/caption_generate.h"
#include "mmkit/ops/softmax.h"
#include "test_util.h"

using namespace mmkit;

namespace {

struct Variant {
  bool norm_first, tie;
  int64_t vision_dim;  // != 16: memory_proj
};

// A random captioner whose logits are far from uniform (weights N(0, 0.5)),
// so that no two tokens tie within float rounding.
Captioner random_model(const Variant& v, int64_t vocab = 12, int64_t max_len = 10, uint64_t seed = 7) {
  CaptionerConfig c;
  c.vision.image_size = 12;
  c.vision.patch_size = 4;
  c.vision.channels = 3;
  c.vision.dim = v.vision_dim;
  c.vision.depth = 1;
  c.vision.heads = 2;
  c.vision.mlp_dim = 32;
  c.vision.num_classes = 0;
  c.vision.norm_first = v.norm_first;
  c.decoder.vocab_size = vocab;
  c.decoder.dim = 16;
  c.decoder.depth = 2;
  c.decoder.heads = 2;
  c.decoder.mlp_dim = 32;
  c.decoder.max_len = max_len;
  c.decoder.norm_first = v.norm_first;
  c.decoder.tie_embeddings = v.tie;
  Captioner m;
  m.init(c, seed);
  Rng rng(seed + 100);
  for (Parameter* p : m.parameters()) {
    float* d = p->value.f32();
    for (int64_t i = 0; i < p->value.numel(); ++i) d[i] = 0.5f * rng.normal();
  }
  // EOS a little less likely than the rest, so captions are not all empty.
  m.decoder.lm_head_bias.value.f32()[m.cfg.decoder.eos_id] -= 1.5f;
  return m;
}

Tensor random_images(int64_t n, uint64_t seed) {
  Tensor t = Tensor::empty(Shape{n, 3, 12, 12});
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = rng.normal();
  return t;
}

// Log-probabilities of the next token after `prefix` (BOS first) for image
// `img`, through the autograd model forward (no cache, no ops shortcuts).
std::vector<float> graph_next_logprobs(Captioner& m, const ImageMemory& mem, int64_t img,
                                       const std::vector<int32_t>& prefix) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  const int64_t T = int64_t(prefix.size()), M = mem.M, D = mem.D, V = m.cfg.decoder.vocab_size;
  Tensor ids = Tensor::empty(Shape{1, T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) ids.ptr<int32_t>()[t] = prefix[size_t(t)];
  Tensor memory = Tensor::view(mem.memory.f32() + img * M * D, Shape{1, M, D}, DType::f32);
  Tensor logits = g.value(caption_decoder_forward(g, m.decoder, ids, g.constant(memory)));
  std::vector<float> lp(static_cast<size_t>(V));
  ops::log_softmax_forward(logits.f32() + (T - 1) * V, lp.data(), 1, V);
  return lp;
}

const Variant kVariants[] = {{false, true, 16}, {true, false, 16}, {false, false, 24}, {true, true, 24}};

}  // namespace

TEST(CaptionGenerate, SessionLogitsMatchModelForward) {
  for (const Variant& v : kVariants) {
    Captioner m = random_model(v);
    ImageMemory mem = encode_images(m, random_images(2, 1));
    const int64_t V = m.cfg.decoder.vocab_size;
    for (bool cached : {true, false}) {
      DecodeSession s(m.decoder, mem, 2, cached);
      s.start({1, 0});  // rows in the opposite order of the images
      std::vector<std::vector<int32_t>> prefix = {{1}, {1}};
      Rng rng(3);
      std::vector<float> logits(size_t(2 * V)), lp(static_cast<size_t>(V));
      for (int step = 0; step < 9; ++step) {
        int32_t tok[2] = {prefix[0].back(), prefix[1].back()};
        s.step(tok, logits.data(), nullptr);
        for (int r = 0; r < 2; ++r) {
          ops::log_softmax_forward(logits.data() + r * V, lp.data(), 1, V);
          std::vector<float> want = graph_next_logprobs(m, mem, 1 - r, prefix[size_t(r)]);
          EXPECT_TRUE(test::close("step " + std::to_string(step) + (cached ? " cached" : " naive"),
                                  Tensor::view(lp.data(), Shape{V}, DType::f32),
                                  Tensor::view(want.data(), Shape{V}, DType::f32), 2e-5f, 2e-5f))
              << "norm_first " << v.norm_first << " tie " << v.tie << " vision dim " << v.vision_dim;
          prefix[size_t(r)].push_back(int32_t(rng.randint(V)));
        }
      }
    }
  }
}

TEST(CaptionGenerate, CachedEqualsNaiveGreedyAndBeam) {
  for (const Variant& v : kVariants) {
    Captioner m = random_model(v, 12, 10);
    ImageMemory mem = encode_images(m, random_images(5, 2));
    for (int beam : {1, 2, 4}) {
      GenerateOptions o;
      o.beam = beam;
      o.attention = true;
      auto fast = generate(m, mem, o);
      o.use_cache = false;
      auto naive = generate(m, mem, o);
      ASSERT_EQ(fast.size(), 5u);
      int total_tokens = 0;
      for (size_t i = 0; i < fast.size(); ++i) {
        EXPECT_EQ(fast[i].tokens, naive[i].tokens) << "image " << i << " beam " << beam;
        EXPECT_EQ(fast[i].finished, naive[i].finished);
        EXPECT_NEAR(fast[i].score, naive[i].score, 1e-4);
        ASSERT_EQ(fast[i].attention.size(), naive[i].attention.size());
        for (size_t j = 0; j < fast[i].attention.size(); ++j)
          EXPECT_NEAR(fast[i].attention[j], naive[i].attention[j], 1e-5);
        total_tokens += int(fast[i].tokens.size());
      }
      EXPECT_GT(total_tokens, 5) << "degenerate case: captions are (nearly) empty";
    }
  }
}

// Greedy = the argmax chain of the model forward; its log-probability is the
// sum along that chain.
TEST(CaptionGenerate, GreedyIsArgmaxOfModelForward) {
  Captioner m = random_model({false, true, 16});
  ImageMemory mem = encode_images(m, random_images(3, 4));
  GenerateOptions o;
  auto caps = generate(m, mem, o);
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<int32_t> prefix = {1};
    double logp = 0;
    std::vector<int32_t> want;
    bool finished = false;
    for (int step = 0; step < 10; ++step) {
      auto lp = graph_next_logprobs(m, mem, i, prefix);
      int32_t best = int32_t(std::max_element(lp.begin(), lp.end()) - lp.begin());
      logp += lp[size_t(best)];
      if (best == 2) {
        finished = true;
        break;
      }
      want.push_back(best);
      prefix.push_back(best);
    }
    EXPECT_EQ(caps[size_t(i)].tokens, want);
    EXPECT_EQ(caps[size_t(i)].finished, finished);
    EXPECT_NEAR(caps[size_t(i)].log_prob, logp, 1e-4);
  }
}

// With a beam wider than the number of hypotheses, beam search is
// exhaustive: its answer is the best GNMT-penalised score over every
// sequence of at most 3 tokens (EOS-terminated or cut at 3), enumerated here
// with the model forward.
TEST(CaptionGenerate, WideBeamEqualsExhaustiveSearch) {
  const int64_t V = 6, T = 3;
  int nonempty = 0;
  for (float alpha : {0.f, 0.6f, 2.f}) {
    Captioner m = random_model({true, false, 16}, V, 4, 11);
    m.decoder.lm_head_bias.value.f32()[2] -= 1.6f;  // a mix of short and full-length answers
    ImageMemory mem = encode_images(m, random_images(2, 5));
    GenerateOptions o;
    o.beam = 200;
    o.max_tokens = T;
    o.length_penalty = alpha;
    auto caps = generate(m, mem, o);
    for (int64_t i = 0; i < 2; ++i) {
      double best = -1e30;
      std::vector<int32_t> best_tokens;
      std::function<void(std::vector<int32_t>, double)> visit = [&](std::vector<int32_t> prefix, double lp) {
        auto next = graph_next_logprobs(m, mem, i, prefix);
        for (int32_t v = 0; v < V; ++v) {
          double l = lp + next[size_t(v)];
          int64_t len = int64_t(prefix.size());  // generated so far + this token
          std::vector<int32_t> words(prefix.begin() + 1, prefix.end());
          if (v == 2 || len == T) {
            if (v != 2) words.push_back(v);
            double s = l / (alpha == 0.f ? 1.0 : std::pow((5.0 + double(len)) / 6.0, alpha));
            if (s > best) {
              best = s;
              best_tokens = words;
            }
          } else {
            auto p = prefix;
            p.push_back(v);
            visit(p, l);
          }
        }
      };
      visit({1}, 0.0);
      EXPECT_NEAR(caps[size_t(i)].score, best, 1e-4) << "alpha " << alpha << " image " << i;
      EXPECT_EQ(caps[size_t(i)].tokens, best_tokens) << "alpha " << alpha << " image " << i;
      nonempty += !best_tokens.empty();
    }
  }
  EXPECT_GE(nonempty, 2) << "degenerate case: the best answer is always the empty caption";
}

TEST(CaptionGenerate, AttentionMapsAreDistributionsPerToken) {
  Captioner m = random_model({false, true, 16});
  ImageMemory mem = encode_images(m, random_images(2, 6));
  for (int beam : {1, 3}) {
    GenerateOptions o;
    o.beam = beam;
    o.attention = true;
    auto caps = generate(m, mem, o);
    for (auto& c : caps) {
      const int64_t steps = int64_t(c.tokens.size()) + (c.finished ? 1 : 0);
      ASSERT_EQ(int64_t(c.attention.size()), steps * mem.M);
      EXPECT_EQ(c.memory_tokens, mem.M);
      for (int64_t s = 0; s < steps; ++s) {
        double sum = 0;
        for (int64_t j = 0; j < mem.M; ++j) sum += c.attention[size_t(s * mem.M + j)];
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

TEST(CaptionGenerate, ExactTokenCountWithoutEosStop) {
  Captioner m = random_model({false, true, 16}, 12, 10);
  ImageMemory mem = encode_images(m, random_images(2, 8));
  GenerateOptions o;
  o.stop_at_eos = false;
  o.max_tokens = 10;
  for (bool cache : {true, false}) {
    o.use_cache = cache;
    for (auto& c : generate(m, mem, o)) EXPECT_EQ(c.tokens.size(), 10u);
  }
  o.max_tokens = 11;
  EXPECT_THROW(generate(m, mem, o), Error);  // more tokens than positions
  o.max_tokens = 5;
  o.beam = 0;
  EXPECT_THROW(generate(m, mem, o), Error);
}

// The gather form of the attention kernel equals the dense form when its
// base pointers are the dense offsets, and reads shared keys/values (several
// queries' rows pointing at one image) exactly as if they had been copied.
TEST(CaptionGenerate, AttentionGatherMatchesDense) {
  const int64_t B = 3, H = 2, dh = 16, D = H * dh;
  for (bool causal : {false, true}) {
    for (int64_t Tq : {1, 4}) {
      const int64_t Tk = causal ? Tq + 3 : 6;
      Rng rng(17);
      std::vector<float> q(size_t(B * Tq * D)), k(size_t(B * Tk * D)), v(size_t(B * Tk * D));
      for (auto* t : {&q, &k, &v})
        for (auto& x : *t) x = rng.normal();
      ops::AttentionDims d;
      d.B = B;
      d.H = H;
      d.Tq = Tq;
      d.Tk = Tk;
      d.dh = dh;
      d.ldq = d.ldk = d.ldv = D;
      d.scale = 0.25f;
      d.causal = causal;
      std::vector<float> dense(size_t(B * Tq * D)), gathered(dense.size()), pd(size_t(B * H * Tq * Tk)), pg(pd.size());
      ops::attention_forward(d, q.data(), k.data(), v.data(), nullptr, dense.data(), pd.data());
      std::vector<const float*> kb, vb;
      for (int64_t b = 0; b < B; ++b) {
        kb.push_back(k.data() + b * Tk * D);
        vb.push_back(v.data() + b * Tk * D);
      }
      ops::attention_forward_gather(d, q.data(), kb.data(), vb.data(), gathered.data(), pg.data());
      EXPECT_EQ(dense, gathered);
      EXPECT_EQ(pd, pg);
      // Every row reads batch element 1's keys/values vs a dense copy of them.
      std::vector<float> k1(k.size()), v1(v.size());
      for (int64_t b = 0; b < B; ++b) {
        std::copy(k.begin() + Tk * D, k.begin() + 2 * Tk * D, k1.begin() + b * Tk * D);
        std::copy(v.begin() + Tk * D, v.begin() + 2 * Tk * D, v1.begin() + b * Tk * D);
      }
      ops::attention_forward(d, q.data(), k1.data(), v1.data(), nullptr, dense.data(), nullptr);
      std::vector<const float*> shared_k(size_t(B), k.data() + Tk * D), shared_v(size_t(B), v.data() + Tk * D);
      ops::attention_forward_gather(d, q.data(), shared_k.data(), shared_v.data(), gathered.data(), nullptr);
      EXPECT_EQ(dense, gathered);
    }
  }
}

TEST(CaptionGenerate, ScopedThreadLimitRestores) {
  const int before = num_threads();
  {
    ScopedThreadLimit one(1);
    EXPECT_EQ(num_threads(), 1);
    ScopedThreadLimit none(0);  // no change
    EXPECT_EQ(num_threads(), 1);
  }
  EXPECT_EQ(num_threads(), before);
}
