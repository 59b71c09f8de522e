// infer::PackedLinear (f32 / f16 / bf16 / int8, every epilogue) against a double-precision
// reference, and infer::ClipEngine against the autograd CLIP (f32) and against itself on
// `mmkit quantize` outputs (int8 / f16 / bf16): embedding cosine and zero-shot top-1 agreement
// on a fixed set of generated images and texts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "mmkit/autograd/graph.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_engine.h"
#include "mmkit/infer/packed_linear.h"
#include "mmkit/infer/quantize.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::infer;

namespace {

std::vector<float> randn(int64_t n, Rng& rng, float scale = 1.f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

double act_ref(Epilogue ep, double v) {
  if (ep == Epilogue::gelu) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  if (ep == Epilogue::quick_gelu) return v / (1 + std::exp(-1.702 * v));
  return v;
}

// y = ep(x Wd^T + b) in double, Wd = the weights as the kind stores them (dequantised).
std::vector<float> linear_ref(const std::vector<float>& x, const std::vector<double>& Wd, const std::vector<float>& b,
                              const std::vector<float>& y0, int64_t M, int64_t K, int64_t N, Epilogue ep) {
  std::vector<float> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b[size_t(n)];
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * Wd[size_t(n * K + k)];
      y[size_t(m * N + n)] = ep == Epilogue::residual ? float(y0[size_t(m * N + n)] + s) : float(act_ref(ep, s));
    }
  return y;
}

double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb + 1e-300);
}

}  // namespace

TEST(QuantizeRows, RoundTripWithinHalfAStep) {
  Rng rng(3);
  const int64_t R = 5, C = 37;
  auto x = randn(R * C, rng);
  for (int64_t c = 0; c < C; ++c) x[size_t(2 * C + c)] = 0.f;  // an all-zero row
  std::vector<int8_t> q(static_cast<size_t>(R * C));
  std::vector<float> s(static_cast<size_t>(R));
  quantize_rows_s8(x.data(), R, C, q.data(), s.data());
  EXPECT_EQ(s[2], 0.f);
  for (int64_t r = 0; r < R; ++r) {
    int maxq = 0;
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_LE(std::fabs(x[size_t(r * C + c)] - q[size_t(r * C + c)] * s[size_t(r)]), 0.5f * s[size_t(r)] + 1e-7f);
      maxq = std::max(maxq, std::abs(int(q[size_t(r * C + c)])));
    }
    if (r != 2) {
      EXPECT_EQ(maxq, 127) << "row " << r << ": the largest value must map to +-127";
    }
  }
}

TEST(PackedLinear, EveryKindAndEpilogueMatchesReference) {
  Rng rng(7);
  const int64_t K = 96, N = 80;
  auto W = randn(N * K, rng, 0.1f);
  auto b = randn(N, rng, 0.1f);
  // The weights as each kind stores them, and their exact values for the reference.
  std::vector<uint16_t> wh(W.size()), wb(W.size());
  std::vector<int8_t> wq(W.size());
  std::vector<float> ws(static_cast<size_t>(N));
  quantize_rows_s8(W.data(), N, K, wq.data(), ws.data());
  std::vector<double> d32(W.size()), d16(W.size()), db16(W.size()), d8(W.size());
  for (size_t i = 0; i < W.size(); ++i) {
    wh[i] = io::f32_to_f16(W[i]);
    wb[i] = io::f32_to_bf16(W[i]);
    d32[i] = W[i];
    d16[i] = io::f16_to_f32(wh[i]);
    db16[i] = io::bf16_to_f32(wb[i]);
    d8[i] = double(wq[i]) * ws[i / size_t(K)];
  }
  LinearScratch scratch;
  for (WeightKind kind : {WeightKind::f32, WeightKind::f16, WeightKind::bf16, WeightKind::int8})
    for (Epilogue ep : {Epilogue::none, Epilogue::gelu, Epilogue::quick_gelu, Epilogue::residual}) {
      LinearSource s;
      s.kind = kind;
      s.out = N;
      s.in = K;
      s.bias = b.data();
      s.name = "test";
      const std::vector<double>* Wd = &d32;
      if (kind == WeightKind::f32) s.w = W.data();
      if (kind == WeightKind::f16) s.w = wh.data(), Wd = &d16;
      if (kind == WeightKind::bf16) s.w = wb.data(), Wd = &db16;
      if (kind == WeightKind::int8) s.w = wq.data(), s.scale = ws.data(), Wd = &d8;
      PackedLinear lin(s, ep);
      for (int64_t M : {1, 7, 50}) {
        auto x = randn(M * K, rng);
        auto y0 = randn(M * N, rng);
        std::vector<float> y = y0;
        lin.forward(x.data(), M, y.data(), scratch);
        auto want = linear_ref(x, *Wd, b, y0, M, K, N, ep);
        // f32/f16: exact weights, f32 accumulation. bf16 rounds x to 8 bits of mantissa; int8
        // quantises x per row (error ~ max|x| / 254 per element, ~sqrt(K) of them per output).
        const float tol = kind == WeightKind::bf16 ? 3e-2f : kind == WeightKind::int8 ? 6e-2f : 2e-4f;
        std::string what = std::string(weight_kind_name(kind)) + " epilogue " + std::to_string(int(ep)) +
                           " M=" + std::to_string(M);
        EXPECT_TRUE(test::close(what, Tensor::from_vector(Shape{M, N}, y), Tensor::from_vector(Shape{M, N}, want),
                                tol, tol));
      }
    }
}

// A small CLIP in both towers with two layers each, head size 32 (the specialised attention path).
class ClipEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::make_temp_dir("infer");
    ClipConfig c;
    c.embed_dim = 32;
    c.image_resolution = 64;
    c.vision_patch_size = 16;
    c.vision_width = 64;
    c.vision_layers = 2;
    c.vision_heads = 2;
    c.context_length = 24;
    c.vocab_size = 500;
    c.transformer_width = 64;
    c.transformer_layers = 2;
    c.transformer_heads = 2;
    cfg_ = c;
    Clip m;
    m.init(c, 11);
    // Clip::init leaves LayerNorms at 1/0 and attention biases at 0; perturb every parameter so a
    // port that drops one diverges visibly.
    Rng rng(5);
    for (Parameter* p : m.parameters()) {
      float* v = p->value.f32();
      for (int64_t i = 0; i < p->value.numel(); ++i) v[i] += 0.05f * rng.normal();
    }
    io::save_parameters(dir_ + "/clip.safetensors", m.parameters(), {{"config", c.to_json()}});
    // Generated inputs: smooth random images (sums of a few sinusoids, like photos more than noise)
    // and token rows [sot, random words, eot, 0...] of random length.
    const int64_t R = c.image_resolution;
    images_.resize(size_t(kImages * 3 * R * R));
    for (int64_t i = 0; i < kImages; ++i)
      for (int64_t ch = 0; ch < 3; ++ch) {
        float fx = 0.05f + 0.3f * rng.uniform(), fy = 0.05f + 0.3f * rng.uniform(), ph = 6.f * rng.uniform();
        for (int64_t y = 0; y < R; ++y)
          for (int64_t x = 0; x < R; ++x)
            images_[size_t(((i * 3 + ch) * R + y) * R + x)] =
                std::sin(fx * x + ph) * std::cos(fy * y) + 0.2f * rng.normal();
      }
    const int64_t T = c.context_length, V = c.vocab_size;
    ids_.assign(size_t(kTexts * T), 0);
    for (int64_t i = 0; i < kTexts; ++i) {
      int64_t len = 2 + int64_t(rng.uniform() * float(T - 3));
      ids_[size_t(i * T)] = int32_t(V - 2);
      for (int64_t t = 1; t <= len; ++t) ids_[size_t(i * T + t)] = 1 + int32_t(rng.uniform() * float(V - 4));
      ids_[size_t(i * T + len + 1)] = int32_t(V - 1);
    }
  }
  static std::vector<float> run_images(ClipEngine& e) {
    std::vector<float> out(size_t(kImages * cfg_.embed_dim));
    e.encode_image(images_.data(), kImages, out.data());
    return out;
  }
  static std::vector<float> run_texts(ClipEngine& e) {
    std::vector<float> out(size_t(kTexts * cfg_.embed_dim));
    e.encode_text(ids_.data(), kTexts, cfg_.context_length, out.data());
    return out;
  }
  // Zero-shot: each image's best-matching text (cosine) among all texts.
  static std::vector<int> top1(const std::vector<float>& img, const std::vector<float>& txt) {
    const int64_t E = cfg_.embed_dim;
    std::vector<int> best;
    for (int64_t i = 0; i < kImages; ++i) {
      int b = 0;
      double bc = -2;
      for (int64_t t = 0; t < kTexts; ++t) {
        double c = cosine(&img[size_t(i * E)], &txt[size_t(t * E)], E);
        if (c > bc) bc = c, b = int(t);
      }
      best.push_back(b);
    }
    return best;
  }
  static constexpr int64_t kImages = 24, kTexts = 24;
  static std::string dir_;
  static ClipConfig cfg_;
  static std::vector<float> images_;
  static std::vector<int32_t> ids_;
};
std::string ClipEngineTest::dir_;
ClipConfig ClipEngineTest::cfg_;
std::vector<float> ClipEngineTest::images_;
std::vector<int32_t> ClipEngineTest::ids_;

TEST_F(ClipEngineTest, F32MatchesAutogradModel) {
  auto e = ClipEngine::open(dir_ + "/clip.safetensors");
  EXPECT_EQ(e->weight_format(), "f32");
  auto m = load_clip(dir_ + "/clip.safetensors");
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  const int64_t R = cfg_.image_resolution, E = cfg_.embed_dim, T = cfg_.context_length;
  Tensor x = Tensor::view(images_.data(), Shape{kImages, 3, R, R}, DType::f32);
  Var vi = clip_encode_image(g, *m, g.constant(x));
  Tensor ids = Tensor::view(ids_.data(), Shape{kTexts, T}, DType::i32);
  Var vt = clip_encode_text(g, *m, ids);
  auto img = run_images(*e), txt = run_texts(*e);
  EXPECT_TRUE(test::close("encode_image", Tensor::from_vector(Shape{kImages, E}, img),
                          Tensor::view(const_cast<float*>(g.data(vi)), Shape{kImages, E}, DType::f32), 1e-4f, 1e-4f));
  EXPECT_TRUE(test::close("encode_text", Tensor::from_vector(Shape{kTexts, E}, txt),
                          Tensor::view(const_cast<float*>(g.data(vt)), Shape{kTexts, E}, DType::f32), 1e-4f, 1e-4f));
  // Batch 1 and a second call at another batch size reuse the buffers and give the same rows.
  std::vector<float> one(static_cast<size_t>(E));
  e->encode_image(images_.data() + 3 * (3 * R * R), 1, one.data());
  for (int64_t j = 0; j < E; ++j) EXPECT_NEAR(one[size_t(j)], img[size_t(3 * E + j)], 1e-4f);
  e->encode_text(ids_.data() + 5 * T, 1, T, one.data());
  for (int64_t j = 0; j < E; ++j) EXPECT_NEAR(one[size_t(j)], txt[size_t(5 * E + j)], 1e-4f);
}

TEST_F(ClipEngineTest, QuantizedFormatsStayCloseToF32) {
  auto ref = ClipEngine::open(dir_ + "/clip.safetensors");
  auto img32 = run_images(*ref), txt32 = run_texts(*ref);
  auto top32 = top1(img32, txt32);
  const int64_t E = cfg_.embed_dim;
  struct Want {
    const char* to;
    double min_cos;
  };
  for (Want w : {Want{"int8", 0.99}, Want{"f16", 0.9999}, Want{"bf16", 0.995}}) {
    const std::string out = dir_ + "/clip_" + w.to + ".safetensors";
    QuantizeReport r = quantize_clip(dir_ + "/clip.safetensors", out, w.to);
    EXPECT_EQ(r.quantized, std::string(w.to) == "int8" ? 4 * (cfg_.vision_layers + cfg_.transformer_layers)
                                                      : r.tensors);
    EXPECT_LT(r.out_bytes, r.in_bytes);
    auto e = ClipEngine::open(out);
    EXPECT_EQ(e->weight_format(), w.to);
    auto img = run_images(*e), txt = run_texts(*e);
    double min_img = 1, min_txt = 1;
    for (int64_t i = 0; i < kImages; ++i) min_img = std::min(min_img, cosine(&img[size_t(i * E)], &img32[size_t(i * E)], E));
    for (int64_t i = 0; i < kTexts; ++i) min_txt = std::min(min_txt, cosine(&txt[size_t(i * E)], &txt32[size_t(i * E)], E));
    auto top = top1(img, txt);
    int agree = 0;
    for (size_t i = 0; i < top.size(); ++i) agree += top[i] == top32[i];
    std::printf("%-5s vs f32: min cosine images %.6f texts %.6f; zero-shot top-1 agreement %d/%zu; file %.2f MB -> %.2f MB\n",
                w.to, min_img, min_txt, agree, top.size(), r.in_bytes / 1e6, r.out_bytes / 1e6);
    EXPECT_GE(min_img, w.min_cos) << w.to;
    EXPECT_GE(min_txt, w.min_cos) << w.to;
    EXPECT_GE(agree, int(top.size()) * 9 / 10) << w.to;
    // The autograd path reads the same file (int8 dequantised, halves widened).
    auto m = load_clip(out);
    EXPECT_EQ(m->cfg.vision_width, cfg_.vision_width);
  }
}

TEST_F(ClipEngineTest, BrokenQuantizedFilesAreRefusedByName) {
  const std::string q = dir_ + "/clip_int8_src.safetensors";
  quantize_clip(dir_ + "/clip.safetensors", q, "int8");
  auto f = io::SafetensorsFile::open(q);
  // Drop one scale tensor: the engine must name it (it is read when the tower is prepared).
  std::vector<io::TensorToWrite> ts;
  const std::string victim = "visual.transformer.resblocks.1.mlp.c_fc.weight_scale";
  for (const auto& t : f.tensors())
    if (t.name != victim) ts.push_back({t.name, t.dtype, t.shape, t.data});
  const std::string bad = dir_ + "/clip_int8_noscale.safetensors";
  io::write_safetensors(bad, ts, f.metadata());
  auto e = ClipEngine::open(bad);
  std::vector<float> out(size_t(cfg_.embed_dim));
  try {
    e->encode_image(images_.data(), 1, out.data());
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(victim), std::string::npos) << err.what();
  }
  // An unknown quantisation label.
  auto meta = f.metadata();
  meta["mmkit.quantization"] = "int4";
  const std::string bad2 = dir_ + "/clip_int4.safetensors";
  std::vector<io::TensorToWrite> all;
  for (const auto& t : f.tensors()) all.push_back({t.name, t.dtype, t.shape, t.data});
  io::write_safetensors(bad2, all, meta);
  try {
    ClipEngine::open(bad2);
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("int4"), std::string::npos) << err.what();
  }
  EXPECT_THROW(quantize_clip(dir_ + "/clip.safetensors", dir_ + "/x.safetensors", "int4"), Error);
}

TEST_F(ClipEngineTest, TokenIdsOutsideTheVocabularyAreRefused) {
  auto e = ClipEngine::open(dir_ + "/clip.safetensors");
  std::vector<int32_t> ids(size_t(cfg_.context_length), 0);
  ids[0] = int32_t(cfg_.vocab_size);
  std::vector<float> out(size_t(cfg_.embed_dim));
  EXPECT_THROW(e->encode_text(ids.data(), 1, cfg_.context_length, out.data()), Error);
  EXPECT_THROW(e->encode_text(ids.data(), 1, cfg_.context_length + 1, out.data()), Error);
}

TEST_F(ClipEngineTest, QuantizeCommandWritesALoadableFile) {
  const std::string out = dir_ + "/cli_int8.safetensors";
  test::RunResult r = test::run_mmkit("quantize --model " + dir_ + "/clip.safetensors --to int8 --out " + out, dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  auto e = ClipEngine::open(out);
  EXPECT_EQ(e->weight_format(), "int8");
  auto ref = ClipEngine::open(dir_ + "/clip.safetensors");
  auto a = run_images(*e), b = run_images(*ref);
  for (int64_t i = 0; i < kImages; ++i)
    EXPECT_GE(cosine(&a[size_t(i * cfg_.embed_dim)], &b[size_t(i * cfg_.embed_dim)], cfg_.embed_dim), 0.99);
  // A format it does not know is refused by the command line, naming the choices.
  r = test::run_mmkit("quantize --model " + dir_ + "/clip.safetensors --to int4 --out " + out, dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("int8"), std::string::npos) << r.err;
  // A missing input is an error, not a crash.
  r = test::run_mmkit("quantize --model " + dir_ + "/nope.safetensors --to f16 --out " + out, dir_);
  EXPECT_EQ(r.code, 1) << r.err;
}
