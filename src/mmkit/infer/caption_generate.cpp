#include "mmkit/infer/caption_generate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "mmkit/core/parallel.h"
#include "mmkit/ops/activation.h"
#include "mmkit/ops/attention.h"
#include "mmkit/ops/elementwise.h"
#include "mmkit/ops/embedding.h"
#include "mmkit/ops/layernorm.h"
#include "mmkit/ops/linear.h"
#include "mmkit/ops/softmax.h"

namespace mmkit {

namespace {

const float* ptr(const Parameter& p) { return p.value.f32(); }

// Rows x width^2 below which a decoding step runs on the calling thread.
constexpr int64_t kParallelWork = int64_t(1) << 20;

template <class V>
float* grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

// ------------------------------------------------------------------ encoding

void project_cross_kv(const CaptionDecoder& d, ImageMemory& mem) {
  const int64_t D = d.cfg.dim, rows = mem.n * mem.M;
  mem.cross_k.clear();
  mem.cross_v.clear();
  for (const auto& layer : d.layers) {
    const auto& a = layer.multihead_attn;
    MMKIT_CHECK(a.packed, "caption decoder: cross-attention must use the packed in_proj layout");
    const float* W = ptr(a.in_proj_weight);
    const float* b = a.has_bias ? ptr(a.in_proj_bias) : nullptr;
    Tensor k = Tensor::empty(Shape{mem.n, mem.M, D}), v = Tensor::empty(Shape{mem.n, mem.M, D});
    // Rows D..2D of in_proj project keys, 2D..3D values (PyTorch's packing).
    ops::linear_forward(mem.memory.f32(), W + D * D, b ? b + D : nullptr, k.f32(), rows, D, D);
    ops::linear_forward(mem.memory.f32(), W + 2 * D * D, b ? b + 2 * D : nullptr, v.f32(), rows, D, D);
    mem.cross_k.push_back(k);
    mem.cross_v.push_back(v);
  }
}

ImageMemory encode_images(Captioner& m, const Tensor& pixels) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var x = captioner_encode(g, m, g.constant(pixels));
  ImageMemory mem;
  const Shape s = g.shape(x);
  mem.n = s[0];
  mem.M = s[1];
  mem.D = s[2];
  mem.memory = g.value(x).clone();
  project_cross_kv(m.decoder, mem);
  return mem;
}

// ------------------------------------------------------------------ session

DecodeSession::DecodeSession(const CaptionDecoder& d, const ImageMemory& mem, int64_t capacity,
                             bool use_cache)
    : d_(d), mem_(mem), cap_(capacity), L_(d.cfg.max_len), D_(d.cfg.dim), use_cache_(use_cache) {
  MMKIT_CHECK(mem.D == D_ && mem.memory.defined(), "caption decoder: image memory has width ", mem.D,
              ", the decoder ", D_);
  MMKIT_CHECK(int64_t(mem.cross_k.size()) == d.cfg.depth, "caption decoder: image memory has cross keys for ",
              mem.cross_k.size(), " layers, the decoder has ", d.cfg.depth);
  MMKIT_CHECK(capacity > 0, "caption decoder: session capacity must be positive");
  k_cache_.assign(d.layers.size(), std::vector<float>(size_t(cap_ * L_ * D_)));
  v_cache_.assign(d.layers.size(), std::vector<float>(size_t(cap_ * L_ * D_)));
}

void DecodeSession::start(const std::vector<int64_t>& row_image) {
  MMKIT_CHECK(int64_t(row_image.size()) <= cap_, "caption decoder: ", row_image.size(),
              " rows exceed the session capacity ", cap_);
  for (int64_t i : row_image) MMKIT_CHECK(i >= 0 && i < mem_.n, "caption decoder: image ", i, " out of range");
  row_image_ = row_image;
  history_.assign(row_image.size(), {});
  pos_ = 0;
}

void DecodeSession::reorder(const std::vector<int64_t>& src) {
  const int64_t R = rows();
  for (int64_t s : src) MMKIT_CHECK(s >= 0 && s < R, "caption decoder: reorder source ", s, " of ", R, " rows");
  std::vector<int64_t> img(src.size());
  for (size_t r = 0; r < src.size(); ++r) img[r] = row_image_[size_t(src[r])];
  if (use_cache_) {
    const size_t row = size_t(L_ * D_), used = size_t(pos_ * D_);
    for (auto* caches : {&k_cache_, &v_cache_})
      for (auto& c : *caches) {
        float* dst = grow(k_spare_, c.size());
        for (size_t r = 0; r < src.size(); ++r)
          std::memcpy(dst + r * row, c.data() + size_t(src[r]) * row, used * sizeof(float));
        std::swap(c, k_spare_);
      }
  } else {
    std::vector<std::vector<int32_t>> h(src.size());
    for (size_t r = 0; r < src.size(); ++r) h[r] = history_[size_t(src[r])];
    history_.swap(h);
  }
  row_image_.swap(img);
}

void DecodeSession::step(const int32_t* tokens, float* logits, float* attn) {
  MMKIT_CHECK(pos_ < L_, "caption decoder: all ", L_, " positions are used");
  const int64_t R = rows();
  if (use_cache_) {
    forward(1, pos_, tokens, logits, attn);
  } else {
    // Naive loop: the whole prefix again, from position 0.
    const int64_t T = pos_ + 1;
    std::vector<int32_t> ids(size_t(R * T));
    for (int64_t r = 0; r < R; ++r) {
      history_[size_t(r)].push_back(tokens[r]);
      std::copy(history_[size_t(r)].begin(), history_[size_t(r)].end(), ids.begin() + r * T);
    }
    forward(T, 0, ids.data(), logits, attn);
  }
  ++pos_;
}

// Tq new tokens per row at positions past..past+Tq-1 (rows' tokens
// contiguous: tokens[r * Tq + i]).
void DecodeSession::forward(int64_t Tq, int64_t past, const int32_t* tokens, float* logits, float* attn) {
  const CaptionDecoderConfig& c = d_.cfg;
  const int64_t R = rows(), N = R * Tq, D = D_, V = c.vocab_size;
  // A step over a few rows is ~10^5-10^6 multiply-adds per layer: waking the
  // pool for each of its ~15 kernels costs more than it saves
  // (docs/BENCHMARKS.md, "Caption generation").
  ScopedThreadLimit small(N * D * D < kParallelWork ? 1 : 0);
  float* x = grow(x_, size_t(N * D));
  ops::embedding_forward(ptr(d_.tok_embed.weight), tokens, x, N, V, D);
  const float* pos = ptr(d_.pos_embed.weight);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < Tq; ++i) ops::axpy(1.f, pos + (past + i) * D, x + (r * Tq + i) * D, D);
  for (size_t l = 0; l < d_.layers.size(); ++l) layer(l, Tq, past, x, attn && l + 1 == d_.layers.size());
  // Last position of every row -> (final norm) -> LM head.
  float* last = grow(last_, size_t(R * D));
  for (int64_t r = 0; r < R; ++r) std::memcpy(last + r * D, x + (r * Tq + Tq - 1) * D, size_t(D) * sizeof(float));
  if (c.norm_first) {
    float* n = grow(h_, size_t(R * D));
    ops::layernorm_forward(last, ptr(d_.norm.weight), ptr(d_.norm.bias), n, grow(mean_, size_t(R)),
                           grow(rstd_, size_t(R)), R, D, d_.norm.eps);
    std::memcpy(last, n, size_t(R * D) * sizeof(float));
  }
  const Parameter& W = c.tie_embeddings ? d_.tok_embed.weight : d_.lm_head_weight;
  ops::linear_forward(last, ptr(W), ptr(d_.lm_head_bias), logits, R, D, V);
  if (attn) {
    const int64_t H = c.heads, M = mem_.M;
    const float* P = probs_.data();  // [R, H, Tq, M]
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < M; ++j) {
        float s = 0;
        for (int64_t h = 0; h < H; ++h) s += P[((r * H + h) * Tq + Tq - 1) * M + j];
        attn[r * M + j] = s / float(H);
      }
  }
}

void DecodeSession::layer(size_t l, int64_t Tq, int64_t past, float* x, bool want_probs) {
  const nn::TransformerDecoderLayer& Ly = d_.layers[l];
  const bool pre = Ly.cfg.norm_first;
  const int64_t R = rows(), N = R * Tq, D = D_, H = Ly.cfg.heads, dh = D / H, F = Ly.cfg.mlp_dim;
  const int64_t M = mem_.M, L = L_;
  float* n = grow(n_buf_, size_t(N * D));
  float* h = grow(h_, size_t(N * D));
  float* ctx = grow(ctx_, size_t(N * D));
  float* mean = grow(mean_, size_t(N));
  float* rstd = grow(rstd_, size_t(N));
  auto norm = [&](const nn::LayerNorm& ln, const float* in, float* out) {
    ops::layernorm_forward(in, ptr(ln.weight), ptr(ln.bias), out, mean, rstd, N, D, ln.eps);
  };
  // Residual + norm: pre-norm x += h; post-norm x = ln(x + h).
  auto residual = [&](const nn::LayerNorm& ln) {
    if (pre) {
      ops::axpy(1.f, h, x, N * D);
    } else {
      ops::add_forward(x, h, n, N * D);
      norm(ln, n, x);
    }
  };
  auto bias = [](const nn::MultiheadAttention& a) { return a.has_bias ? ptr(a.in_proj_bias) : nullptr; };
  kb_.resize(size_t(R));
  vb_.resize(size_t(R));
  ops::AttentionDims ad;
  ad.B = R;
  ad.H = H;
  ad.Tq = Tq;
  ad.dh = dh;
  ad.scale = 1.f / std::sqrt(float(dh));

  // --- causal self-attention; this step's keys/values go into the cache
  const nn::MultiheadAttention& sa = Ly.self_attn;
  if (pre) norm(Ly.norm1, x, n);
  float* qkv = grow(qkv_, size_t(N * 3 * D));
  ops::linear_forward(pre ? n : x, ptr(sa.in_proj_weight), bias(sa), qkv, N, D, 3 * D);
  float* kc = k_cache_[l].data();
  float* vc = v_cache_[l].data();
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = 0; i < Tq; ++i) {
      const float* src = qkv + (r * Tq + i) * 3 * D;
      std::memcpy(kc + (r * L + past + i) * D, src + D, size_t(D) * sizeof(float));
      std::memcpy(vc + (r * L + past + i) * D, src + 2 * D, size_t(D) * sizeof(float));
    }
    kb_[size_t(r)] = kc + r * L * D;
    vb_[size_t(r)] = vc + r * L * D;
  }
  ad.Tk = past + Tq;
  ad.ldq = 3 * D;
  ad.ldk = ad.ldv = D;
  ad.causal = true;
  ops::attention_forward_gather(ad, qkv, kb_.data(), vb_.data(), ctx, nullptr);
  ops::linear_forward(ctx, ptr(sa.out_proj.weight), sa.out_proj.has_bias ? ptr(sa.out_proj.bias) : nullptr, h,
                      N, D, D);
  residual(Ly.norm1);

  // --- cross-attention to the image
  const nn::MultiheadAttention& ca = Ly.multihead_attn;
  const float* Wc = ptr(ca.in_proj_weight);
  const float* bc = bias(ca);
  if (pre) norm(Ly.norm2, x, n);
  ops::linear_forward(pre ? n : x, Wc, bc, qkv, N, D, D);  // q: rows 0..D of in_proj
  if (use_cache_) {
    // Computed once per image (encode_images), shared by its beams.
    for (int64_t r = 0; r < R; ++r) {
      kb_[size_t(r)] = mem_.cross_k[l].f32() + row_image_[size_t(r)] * M * D;
      vb_[size_t(r)] = mem_.cross_v[l].f32() + row_image_[size_t(r)] * M * D;
    }
  } else {
    // Naive: project the image tokens again for every row at every step.
    float* ck = grow(cross_k_tmp_, size_t(R * M * D));
    float* cv = grow(cross_v_tmp_, size_t(R * M * D));
    for (int64_t r = 0; r < R; ++r) {
      const float* m = mem_.memory.f32() + row_image_[size_t(r)] * M * D;
      ops::linear_forward(m, Wc + D * D, bc ? bc + D : nullptr, ck + r * M * D, M, D, D);
      ops::linear_forward(m, Wc + 2 * D * D, bc ? bc + 2 * D : nullptr, cv + r * M * D, M, D, D);
      kb_[size_t(r)] = ck + r * M * D;
      vb_[size_t(r)] = cv + r * M * D;
    }
  }
  ad.Tk = M;
  ad.ldq = D;
  ad.causal = false;
  float* P = want_probs ? grow(probs_, size_t(R * H * Tq * M)) : nullptr;
  ops::attention_forward_gather(ad, qkv, kb_.data(), vb_.data(), ctx, P);
  ops::linear_forward(ctx, ptr(ca.out_proj.weight), ca.out_proj.has_bias ? ptr(ca.out_proj.bias) : nullptr, h,
                      N, D, D);
  residual(Ly.norm2);

  // --- feed-forward
  if (pre) norm(Ly.norm3, x, n);
  float* f = grow(ff_, size_t(N * F));
  ops::linear_forward(pre ? n : x, ptr(Ly.ff.fc1.weight), ptr(Ly.ff.fc1.bias), f, N, D, F);
  float* fa = grow(ffa_, size_t(N * F));
  if (Ly.ff.act == nn::Activation::gelu)
    ops::gelu_forward(f, fa, N * F);
  else if (Ly.ff.act == nn::Activation::gelu_tanh)
    ops::gelu_tanh_forward(f, fa, N * F);
  else
    ops::quick_gelu_forward(f, fa, N * F);
  ops::linear_forward(fa, ptr(Ly.ff.fc2.weight), ptr(Ly.ff.fc2.bias), h, N, F, D);
  residual(Ly.norm3);
}

// ------------------------------------------------------------------ search

namespace {

void log_softmax_rows(const float* logits, float* out, int64_t R, int64_t V) {
  ops::log_softmax_forward(logits, out, R, V);
}

double gnmt_lp(int64_t len, float alpha) {
  return alpha == 0.f ? 1.0 : std::pow((5.0 + double(len)) / 6.0, double(alpha));
}

std::vector<GeneratedCaption> greedy(const CaptionDecoder& d, const ImageMemory& mem, const GenerateOptions& o,
                                     int64_t max_tokens) {
  const int64_t N = mem.n, V = d.cfg.vocab_size, M = mem.M;
  std::vector<GeneratedCaption> out(static_cast<size_t>(N));
  DecodeSession s(d, mem, N, o.use_cache);
  std::vector<int64_t> row_img(static_cast<size_t>(N));
  std::iota(row_img.begin(), row_img.end(), 0);
  s.start(row_img);
  std::vector<int32_t> tok(size_t(N), d.cfg.bos_id);
  std::vector<float> logits, lsm, attn;
  for (int64_t step = 0; step < max_tokens && s.rows() > 0; ++step) {
    const int64_t R = s.rows();
    s.step(tok.data(), grow(logits, size_t(R * V)), o.attention ? grow(attn, size_t(R * M)) : nullptr);
    log_softmax_rows(logits.data(), grow(lsm, size_t(R * V)), R, V);
    std::vector<int64_t> keep;
    std::vector<int32_t> next;
    for (int64_t r = 0; r < R; ++r) {
      const float* lp = lsm.data() + r * V;
      int32_t best = int32_t(std::max_element(lp, lp + V) - lp);  // first maximum: lowest id on ties
      GeneratedCaption& c = out[size_t(row_img[size_t(r)])];
      c.log_prob += lp[best];
      if (o.attention) c.attention.insert(c.attention.end(), attn.data() + r * M, attn.data() + (r + 1) * M);
      if (o.stop_at_eos && best == d.cfg.eos_id) {
        c.finished = true;
        continue;
      }
      c.tokens.push_back(best);
      keep.push_back(r);
      next.push_back(best);
    }
    if (int64_t(keep.size()) != R) {
      std::vector<int64_t> img;
      for (int64_t r : keep) img.push_back(row_img[size_t(r)]);
      s.reorder(keep);
      row_img.swap(img);
    }
    tok.swap(next);
  }
  for (auto& c : out) {
    c.score = c.log_prob;
    c.memory_tokens = M;
  }
  return out;
}

struct Hyp {
  std::vector<int32_t> tokens;
  double log_prob = 0;
  std::vector<float> attention;
};

struct Candidate {
  double log_prob;
  int64_t beam;
  int32_t token;
};

std::vector<GeneratedCaption> beam_search(const CaptionDecoder& d, const ImageMemory& mem,
                                          const GenerateOptions& o, int64_t max_tokens) {
  const int64_t N = mem.n, V = d.cfg.vocab_size, M = mem.M, K = o.beam;
  const float alpha = o.length_penalty;
  struct ImageState {
    std::vector<Hyp> alive;
    std::vector<GeneratedCaption> finished;  // best first, at most K
    bool done = false;
  };
  std::vector<ImageState> st(static_cast<size_t>(N));
  DecodeSession s(d, mem, N * K, o.use_cache);
  std::vector<int64_t> row_img(static_cast<size_t>(N));
  std::iota(row_img.begin(), row_img.end(), 0);
  for (auto& im : st) im.alive.resize(1);  // one row per image at first: K copies of BOS would tie
  s.start(row_img);
  auto finish = [&](ImageState& im, const Hyp& h, bool eos) {
    GeneratedCaption c;
    c.tokens = h.tokens;
    c.finished = eos;
    c.log_prob = h.log_prob;
    c.score = h.log_prob / gnmt_lp(int64_t(h.tokens.size()) + (eos ? 1 : 0), alpha);
    c.attention = h.attention;
    c.memory_tokens = M;
    auto pos = std::find_if(im.finished.begin(), im.finished.end(),
                            [&](const GeneratedCaption& f) { return c.score > f.score; });
    im.finished.insert(pos, std::move(c));
    if (int64_t(im.finished.size()) > K) im.finished.resize(size_t(K));
  };
  std::vector<float> logits, lsm, attn;
  std::vector<int32_t> tok;
  std::vector<Candidate> cand;
  for (int64_t step = 0; step < max_tokens && s.rows() > 0; ++step) {
    const int64_t R = s.rows();
    tok.clear();
    for (auto& im : st)
      if (!im.done)
        for (auto& h : im.alive) tok.push_back(h.tokens.empty() ? d.cfg.bos_id : h.tokens.back());
    s.step(tok.data(), grow(logits, size_t(R * V)), o.attention ? grow(attn, size_t(R * M)) : nullptr);
    log_softmax_rows(logits.data(), grow(lsm, size_t(R * V)), R, V);
    std::vector<int64_t> src;
    int64_t r0 = 0;
    const bool last_step = step + 1 == max_tokens;
    for (auto& im : st) {
      if (im.done) continue;
      const int64_t nb = int64_t(im.alive.size());
      cand.clear();
      for (int64_t b = 0; b < nb; ++b) {
        const float* lp = lsm.data() + (r0 + b) * V;
        for (int32_t v = 0; v < V; ++v) cand.push_back({im.alive[size_t(b)].log_prob + lp[v], b, v});
      }
      const size_t top = std::min(cand.size(), size_t(2 * K));
      std::partial_sort(cand.begin(), cand.begin() + long(top), cand.end(), [](const Candidate& a, const Candidate& b) {
        if (a.log_prob != b.log_prob) return a.log_prob > b.log_prob;
        return a.beam != b.beam ? a.beam < b.beam : a.token < b.token;
      });
      std::vector<Hyp> next;
      std::vector<int64_t> next_src;
      for (size_t k = 0; k < top && int64_t(next.size()) < K; ++k) {
        const Candidate& c = cand[k];
        const Hyp& parent = im.alive[size_t(c.beam)];
        Hyp h;
        h.tokens = parent.tokens;
        h.log_prob = c.log_prob;
        if (o.attention) {
          h.attention = parent.attention;
          const float* a = attn.data() + (r0 + c.beam) * M;
          h.attention.insert(h.attention.end(), a, a + M);
        }
        if (o.stop_at_eos && c.token == d.cfg.eos_id) {
          if (int64_t(k) < K) finish(im, h, true);  // EOS only counts within the first K
          continue;
        }
        h.tokens.push_back(c.token);
        next.push_back(std::move(h));
        next_src.push_back(r0 + c.beam);
      }
      r0 += nb;
      if (last_step) {
        for (auto& h : next) finish(im, h, false);
        next.clear();
      }
      if (int64_t(im.finished.size()) >= K && !next.empty()) {
        // The best alive beam (highest log P) can at most reach log P / lp(max_tokens).
        double bound = next.front().log_prob / gnmt_lp(max_tokens, alpha);
        if (bound <= im.finished.back().score) next.clear();
      }
      im.alive = std::move(next);
      if (im.alive.empty()) {
        im.done = true;
        continue;
      }
      src.insert(src.end(), next_src.begin(), next_src.end());
    }
    s.reorder(src);
  }
  std::vector<GeneratedCaption> out(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    ImageState& im = st[size_t(i)];
    for (auto& h : im.alive) finish(im, h, false);  // only when max_tokens ended the search early
    MMKIT_CHECK(!im.finished.empty(), "beam search: no hypothesis for image ", i);
    out[size_t(i)] = im.finished.front();
  }
  return out;
}

}  // namespace

void check_generate_options(const Captioner& m, const GenerateOptions& o) {
  const int64_t L = m.decoder.cfg.max_len;
  MMKIT_CHECK(o.beam >= 1 && o.beam <= 256, "beam width must be in 1..256, got ", o.beam);
  MMKIT_CHECK(std::isfinite(o.length_penalty) && o.length_penalty >= 0.f,
              "length penalty must be a non-negative number, got ", o.length_penalty);
  MMKIT_CHECK(o.max_tokens <= L, "cannot generate ", o.max_tokens, " tokens: the model has ", L, " positions");
}

std::vector<GeneratedCaption> generate(const Captioner& m, const ImageMemory& mem, const GenerateOptions& o) {
  const CaptionDecoder& d = m.decoder;
  check_generate_options(m, o);
  const int64_t max_tokens = o.max_tokens > 0 ? o.max_tokens : d.cfg.max_len;
  if (mem.n == 0) return {};
  return o.beam == 1 ? greedy(d, mem, o, max_tokens) : beam_search(d, mem, o, max_tokens);
}

}  // namespace mmkit
