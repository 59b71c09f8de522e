// Finite-difference checks of every op's backward, through the autograd
// Graph: for L = sum(out * g) with a fixed random upstream g, compare the
// analytic dL/dinput with central differences (L(x+h) - L(x-h)) / 2h.
// Float32 forward passes limit the attainable accuracy, so h = 1e-2 (the
// ops are smooth at that scale) and the tolerance is 1e-2 relative to the
// gradient's scale plus a small absolute term.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/rng.h"
#include "mmkit/ops/activation.h"
#include "test_util.h"

using namespace mmkit;

using Fn = std::function<Var(Graph&, const std::vector<Var>&)>;

static Tensor randn(const Shape& s, uint64_t seed, float scale = 1.f) {
  Rng r(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = r.normal() * scale;
  return t;
}

// Forward value of L for the given inputs (no gradient recording).
static double loss_value(const Fn& f, const std::vector<Tensor>& in, const Tensor& g_up) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  std::vector<Var> vs;
  for (auto& t : in) vs.push_back(g.constant(t));
  Var out = f(g, vs);
  const float* o = g.data(out);
  double L = 0;
  for (int64_t i = 0; i < g.value(out).numel(); ++i) L += double(o[i]) * g_up.f32()[i];
  return L;
}

static void gradcheck(const std::string& name, const Fn& f, std::vector<Tensor> in,
                      std::vector<bool> check = {}, float h = 1e-2f, float tol = 1e-2f) {
  if (check.empty()) check.assign(in.size(), true);
  Arena arena;
  Graph g(arena);
  std::vector<Var> vs;
  for (size_t k = 0; k < in.size(); ++k) vs.push_back(check[k] ? g.leaf(in[k]) : g.constant(in[k]));
  Var out = f(g, vs);
  Tensor g_up = randn(g.value(out).shape(), 99);
  g.backward(out, g_up);
  for (size_t k = 0; k < in.size(); ++k) {
    if (!check[k]) continue;
    Tensor analytic = g.grad(vs[k]).clone();
    Tensor numeric = Tensor::empty(in[k].shape());
    for (int64_t i = 0; i < in[k].numel(); ++i) {
      float orig = in[k].f32()[i];
      in[k].f32()[i] = orig + h;
      double lp = loss_value(f, in, g_up);
      in[k].f32()[i] = orig - h;
      double lm = loss_value(f, in, g_up);
      in[k].f32()[i] = orig;
      numeric.f32()[i] = float((lp - lm) / (2.0 * h));
    }
    float scale = test::max_abs(numeric);
    EXPECT_TRUE(test::close(name + " d/input" + std::to_string(k), analytic, numeric,
                            tol * scale + 1e-3f, tol));
  }
}

TEST(GradCheck, Linear) {
  gradcheck("linear", [](Graph& g, const std::vector<Var>& v) { return ag::linear(g, v[0], v[1], v[2]); },
            {randn({2, 3, 5}, 1), randn({4, 5}, 2), randn({4}, 3)});
}

TEST(GradCheck, Matmul) {
  gradcheck("matmul", [](Graph& g, const std::vector<Var>& v) { return ag::matmul(g, v[0], v[1]); },
            {randn({2, 3, 5}, 1), randn({5, 4}, 2)});
}

TEST(GradCheck, LinearRowsWithBiasOffset) {
  gradcheck("linear_rows",
            [](Graph& g, const std::vector<Var>& v) { return ag::linear_rows(g, v[0], v[1], v[2], 2, 3, 5); },
            {randn({3, 5}, 1), randn({6, 5}, 2), randn({9}, 3)});
}

TEST(GradCheck, AddMulScaleBroadcast) {
  gradcheck("add", [](Graph& g, const std::vector<Var>& v) { return ag::add(g, v[0], v[1]); },
            {randn({3, 4}, 1), randn({3, 4}, 2)});
  gradcheck("mul", [](Graph& g, const std::vector<Var>& v) { return ag::mul(g, v[0], v[1]); },
            {randn({3, 4}, 1), randn({3, 4}, 2)});
  gradcheck("scale", [](Graph& g, const std::vector<Var>& v) { return ag::scale(g, v[0], -1.7f); },
            {randn({3, 4}, 1)});
  gradcheck("add_broadcast",
            [](Graph& g, const std::vector<Var>& v) { return ag::add_broadcast(g, v[0], v[1]); },
            {randn({2, 3, 4}, 1), randn({1, 3, 4}, 2)});
}

TEST(GradCheck, Activations) {
  gradcheck("gelu", [](Graph& g, const std::vector<Var>& v) { return ag::gelu(g, v[0]); },
            {randn({4, 8}, 1, 2.f)});
  gradcheck("quick_gelu", [](Graph& g, const std::vector<Var>& v) { return ag::quick_gelu(g, v[0]); },
            {randn({4, 8}, 2, 2.f)});
  gradcheck("gelu_tanh", [](Graph& g, const std::vector<Var>& v) { return ag::gelu_tanh(g, v[0]); },
            {randn({4, 8}, 3, 2.f)});
}

// gelu_tanh's forward (computed as x * sigmoid(2u)) against the tanh form PyTorch writes.
TEST(GradCheck, GeluTanhMatchesTheTanhFormula) {
  Tensor x = randn({64}, 4, 3.f);
  std::vector<float> y(64);
  ops::gelu_tanh_forward(x.f32(), y.data(), 64);
  for (int i = 0; i < 64; ++i) {
    const double v = x.f32()[i];
    const double want = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    EXPECT_NEAR(y[size_t(i)], want, 2e-6 * (1 + std::fabs(want))) << "x = " << v;
  }
}

// Values k + offset for integers k in [-3, 3]: sums of up to three such tensors (offsets chosen so
// the fractional parts add to 0.63) stay >= 0.37 away from ReLU's kink at 0, far beyond the
// finite-difference step.
static Tensor off_grid(const Shape& s, uint64_t seed, float offset) {
  Rng r(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(int(r.uniform() * 7.f) - 3) + offset;
  return t;
}

TEST(GradCheck, Relu) {
  gradcheck("relu", [](Graph& g, const std::vector<Var>& v) { return ag::relu(g, v[0]); },
            {off_grid({4, 8}, 1, 0.37f)});
  // Fused linear + ReLU; the pre-activations of these seeds are >= 0.05 away from 0 (checked below).
  std::vector<Tensor> in = {randn({2, 3, 5}, 7), randn({6, 5}, 8), randn({6}, 9)};
  {
    Arena arena;
    Graph g(arena);
    Var pre = ag::linear(g, g.constant(in[0]), g.constant(in[1]), g.constant(in[2]));
    float closest = 1e9f;
    for (int64_t i = 0; i < g.value(pre).numel(); ++i) closest = std::min(closest, std::fabs(g.data(pre)[i]));
    ASSERT_GT(closest, 0.05f) << "pick another seed: a pre-activation is near the kink";
  }
  gradcheck("linear_relu", [](Graph& g, const std::vector<Var>& v) { return ag::linear_relu(g, v[0], v[1], v[2]); },
            in, {}, 1e-3f);
}

TEST(GradCheck, RelationPairs) {
  // a [2, 3, 4], c [2, 3, 4], q [2, 4]: every pair sum a_i + c_j + q is (integer + 0.63).
  gradcheck("relation_pairs",
            [](Graph& g, const std::vector<Var>& v) { return ag::relation_pairs(g, v[0], v[1], v[2]); },
            {off_grid({2, 3, 4}, 1, 0.13f), off_grid({2, 3, 4}, 2, 0.21f), off_grid({2, 4}, 3, 0.29f)});
  gradcheck("relation_pairs with e",
            [](Graph& g, const std::vector<Var>& v) { return ag::relation_pairs(g, v[0], v[1], v[2], v[3]); },
            {off_grid({2, 3, 4}, 6, 0.13f), off_grid({2, 3, 4}, 7, 0.21f), off_grid({2, 4}, 8, 0.29f),
             off_grid({2, 3, 3, 4}, 9, 0.f)});
  gradcheck("pair_sqdiff", [](Graph& g, const std::vector<Var>& v) { return ag::pair_sqdiff(g, v[0]); },
            {randn({2, 4, 3}, 10)});
  gradcheck("relation_pairs without q",
            [](Graph& g, const std::vector<Var>& v) { return ag::relation_pairs(g, v[0], v[1], Var{}); },
            {off_grid({2, 3, 4}, 4, 0.13f), off_grid({2, 3, 4}, 5, 0.5f)});
}

TEST(GradCheck, ReshapeGradientAliasing) {
  // reshape's backward hands its gradient buffer to the input when that has none yet; the input's
  // other consumers (before and after the reshape) must still add to it.
  gradcheck("reshape aliasing", [](Graph& g, const std::vector<Var>& v) {
    Var before = ag::scale(g, v[0], 3.f);                                   // consumer created first
    Var r = ag::reshape(g, ag::reshape(g, v[0], Shape{6, 4}), Shape{2, 12});  // chained reshapes
    Var after = ag::gelu(g, v[0]);                                           // consumer created last
    return ag::add(g, ag::mul(g, ag::reshape(g, before, Shape{2, 12}), r), ag::reshape(g, after, Shape{2, 12}));
  }, {randn({2, 3, 4}, 1)});
}

TEST(GradCheck, SoftmaxFamily) {
  gradcheck("softmax", [](Graph& g, const std::vector<Var>& v) { return ag::softmax(g, v[0]); },
            {randn({3, 7}, 1)});
  gradcheck("log_softmax", [](Graph& g, const std::vector<Var>& v) { return ag::log_softmax(g, v[0]); },
            {randn({3, 7}, 2)});
  Tensor targets = Tensor::empty(Shape{5}, DType::i32);
  int32_t t[5] = {0, 3, 6, 2, 3};
  for (int i = 0; i < 5; ++i) targets.ptr<int32_t>()[i] = t[i];
  for (float smoothing : {0.f, 0.1f})
    gradcheck("cross_entropy",
              [&](Graph& g, const std::vector<Var>& v) { return ag::cross_entropy(g, v[0], targets, smoothing); },
              {randn({5, 7}, 3)});
}

TEST(GradCheck, ClipContrastiveLoss) {
  // Embeddings, and the log inverse temperature (incl. one near CLIP's cap ln 100).
  for (float t : {0.3f, 2.659f, 4.6f}) {
    Tensor ts = Tensor::empty(Shape{1});
    ts.f32()[0] = t;
    gradcheck("clip_contrastive_loss t=" + std::to_string(t),
              [](Graph& g, const std::vector<Var>& v) { return ag::clip_contrastive_loss(g, v[0], v[1], v[2]); },
              {randn({5, 6}, 1), randn({5, 6}, 2), ts}, {}, 1e-3f);
  }
}

TEST(GradCheck, SigmoidLoss) {
  // Embeddings, log logit scale and bias: SigLIP's initialisation (log 10, -10),
  // a trained-like point, and a positive bias (negatives in the loss's steep part).
  const float cases[3][2] = {{2.303f, -10.f}, {3.2f, -2.5f}, {0.7f, 1.3f}};
  for (const auto& c : cases) {
    Tensor ts = Tensor::empty(Shape{1}), tb = Tensor::empty(Shape{1});
    ts.f32()[0] = c[0];
    tb.f32()[0] = c[1];
    gradcheck("sigmoid_loss t=" + std::to_string(c[0]) + " bias=" + std::to_string(c[1]),
              [](Graph& g, const std::vector<Var>& v) { return ag::sigmoid_loss(g, v[0], v[1], v[2], v[3]); },
              {randn({5, 6}, 1), randn({5, 6}, 2), ts, tb}, {}, 1e-3f);
  }
}

TEST(GradCheck, LayerNorm) {
  gradcheck("layernorm",
            [](Graph& g, const std::vector<Var>& v) { return ag::layernorm(g, v[0], v[1], v[2], 1e-5f); },
            {randn({2, 3, 8}, 1), randn({8}, 2), randn({8}, 3)});
}

TEST(GradCheck, Embedding) {
  Tensor ids = Tensor::empty(Shape{2, 4}, DType::i32);
  int32_t v[8] = {1, 3, 3, 0, 5, 1, 1, 2};
  for (int i = 0; i < 8; ++i) ids.ptr<int32_t>()[i] = v[i];
  gradcheck("embedding", [&](Graph& g, const std::vector<Var>& x) { return ag::embedding(g, x[0], ids); },
            {randn({6, 3}, 1)});
}

TEST(GradCheck, PatchEmbed) {
  gradcheck("patch_embed",
            [](Graph& g, const std::vector<Var>& v) { return ag::patch_embed(g, v[0], v[1], v[2], 2); },
            {randn({2, 3, 4, 6}, 1), randn({5, 3, 2, 2}, 2), randn({5}, 3)});
}

TEST(GradCheck, ShapeOps) {
  gradcheck("concat", [](Graph& g, const std::vector<Var>& v) { return ag::concat(g, {v[0], v[1]}, 1); },
            {randn({2, 3, 4}, 1), randn({2, 2, 4}, 2)});
  gradcheck("concat_last", [](Graph& g, const std::vector<Var>& v) { return ag::concat(g, {v[0], v[1]}, -1); },
            {randn({2, 3}, 1), randn({2, 5}, 2)});
  // Seven inputs (the most a node holds): inputs 4..6 keep their ids in the node's integer slots.
  gradcheck("concat7", [](Graph& g, const std::vector<Var>& v) { return ag::concat(g, v, 1); },
            {randn({2, 1, 3}, 1), randn({2, 2, 3}, 2), randn({2, 1, 3}, 3), randn({2, 3, 3}, 4),
             randn({2, 2, 3}, 5), randn({2, 1, 3}, 6), randn({2, 2, 3}, 7)});
  {
    Arena arena;
    Graph g(arena);
    std::vector<Var> eight(8, g.constant(randn({2, 2}, 8)));
    EXPECT_NE(test::error_of([&] { ag::concat(g, eight, 1); }).find("concat: 1 to 7 inputs supported, got 8"),
              std::string::npos);
  }
  gradcheck("transpose", [](Graph& g, const std::vector<Var>& v) { return ag::transpose(g, v[0], 1, 3); },
            {randn({2, 3, 4, 5}, 1)});
  gradcheck("reshape", [](Graph& g, const std::vector<Var>& v) {
    return ag::mul(g, ag::reshape(g, v[0], Shape{6, 4}), ag::reshape(g, v[0], Shape{6, 4}));
  }, {randn({2, 3, 4}, 1)});
  gradcheck("broadcast_batch",
            [](Graph& g, const std::vector<Var>& v) { return ag::broadcast_batch(g, v[0], 3); },
            {randn({1, 2, 4}, 1)});
}

TEST(GradCheck, Pooling) {
  gradcheck("mean_tokens", [](Graph& g, const std::vector<Var>& v) { return ag::mean_tokens(g, v[0]); },
            {randn({2, 5, 3}, 1)});
  Tensor idx = Tensor::empty(Shape{2}, DType::i32);
  idx.ptr<int32_t>()[0] = 4;
  idx.ptr<int32_t>()[1] = 1;
  gradcheck("select_token", [&](Graph& g, const std::vector<Var>& v) { return ag::select_token(g, v[0], idx); },
            {randn({2, 5, 3}, 1)});
}

TEST(GradCheck, Dropout) {
  // With a fixed seed the mask is fixed, so the op is linear in x.
  gradcheck("dropout", [](Graph& g, const std::vector<Var>& v) {
    g.training = true;
    g.seed = 7;
    return ag::dropout(g, v[0], 0.3f);
  }, {randn({4, 16}, 1)});
}

// Attention over every head-size code path (generic, 16, 32, 64), packed
// self-attention with causal and padding masks, and cross-attention.
static void attention_case(int64_t dh, bool causal, bool padded, bool cross) {
  const int64_t B = 2, H = 2, D = H * dh, Tq = cross ? 3 : 5, Tk = 5;
  Tensor pad = Tensor::zeros(Shape{B, Tk}, DType::u8);
  if (padded) {
    pad.ptr<uint8_t>()[3] = pad.ptr<uint8_t>()[4] = 1;  // row 0 pads keys 3, 4
    pad.ptr<uint8_t>()[Tk + 4] = 1;                      // row 1 pads key 4
  }
  std::string name = "attention dh=" + std::to_string(dh) + (causal ? " causal" : "") +
                     (padded ? " padded" : "") + (cross ? " cross" : "");
  ag::AttnOptions opt;
  opt.heads = H;
  opt.causal = causal;
  opt.key_padding = padded ? &pad : nullptr;
  if (!cross) {
    gradcheck(name, [&](Graph& g, const std::vector<Var>& v) {
      return ag::attention(g, {v[0], 0}, {v[0], D}, {v[0], 2 * D}, D, opt);
    }, {randn({B, Tq, 3 * D}, 5, 0.7f)});
  } else {
    gradcheck(name, [&](Graph& g, const std::vector<Var>& v) {
      return ag::attention(g, {v[0], 0}, {v[1], 0}, {v[1], D}, D, opt);
    }, {randn({B, Tq, D}, 5, 0.7f), randn({B, Tk, 2 * D}, 6, 0.7f)});
  }
}

TEST(GradCheck, Attention) {
  for (int64_t dh : {3, 16, 32, 64}) {
    attention_case(dh, false, false, false);
    attention_case(dh, true, false, false);
    attention_case(dh, false, true, false);
    attention_case(dh, false, true, true);
  }
}

// The tolerance helper itself must reject a real difference.
TEST(GradCheck, CloseDetectsMismatch) {
  Tensor a = Tensor::from_vector(Shape{3}, {1.f, 2.f, 3.f});
  Tensor b = Tensor::from_vector(Shape{3}, {1.f, 2.1f, 3.f});
  EXPECT_FALSE(test::close("x", a, b, 1e-3f, 1e-3f));
  EXPECT_TRUE(test::close("x", a, a, 0.f, 0.f));
}

TEST(GradCheck, SoftCrossEntropy) {
  // Soft targets: a normalised multi-answer row, a one-hot row, an unnormalised row, an all-zero row.
  Tensor t = Tensor::zeros(Shape{4, 6});
  float rows[4][6] = {{0.5f, 0.f, 0.25f, 0.25f, 0.f, 0.f},
                      {0.f, 0.f, 0.f, 1.f, 0.f, 0.f},
                      {0.f, 0.3f, 0.f, 0.f, 0.9f, 0.f},
                      {0.f, 0.f, 0.f, 0.f, 0.f, 0.f}};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) t.f32()[i * 6 + j] = rows[i][j];
  gradcheck("soft_cross_entropy",
            [&](Graph& g, const std::vector<Var>& v) { return ag::soft_cross_entropy(g, v[0], t); },
            {randn({4, 6}, 5)});
}

TEST(GradCheck, GatherRows) {
  // Repeated and skipped rows: the backward must scatter-add.
  Tensor idx = Tensor::empty(Shape{5}, DType::i32);
  int32_t v[5] = {2, 0, 2, 2, 1};
  for (int i = 0; i < 5; ++i) idx.ptr<int32_t>()[i] = v[i];
  gradcheck("gather_rows", [&](Graph& g, const std::vector<Var>& x) { return ag::gather_rows(g, x[0], idx); },
            {randn({4, 3, 2}, 1)});
}

TEST(GradCheck, MaxTokens) {
  // Row 0 pads its last token; distinct values keep the argmax away from ties within h.
  Tensor pad = Tensor::zeros(Shape{2, 4}, DType::u8);
  pad.ptr<uint8_t>()[3] = 1;
  Tensor x = randn({2, 4, 3}, 1, 3.f);
  gradcheck("max_tokens", [&](Graph& g, const std::vector<Var>& v) { return ag::max_tokens(g, v[0], &pad); }, {x},
            {}, 1e-3f);
  // The padded token never wins, even when it holds the largest value.
  Arena arena;
  Graph g(arena);
  Tensor big = Tensor::zeros(Shape{2, 4, 3});
  for (int d = 0; d < 3; ++d) big.f32()[3 * 3 + d] = 100.f;  // row 0, token 3 (padded)
  Var y = ag::max_tokens(g, g.constant(big), &pad);
  for (int d = 0; d < 3; ++d) EXPECT_EQ(g.data(y)[d], 0.f);
}

TEST(GradCheck, Bmm) {
  gradcheck("bmm", [](Graph& g, const std::vector<Var>& v) { return ag::bmm(g, v[0], v[1]); },
            {randn({3, 2, 5}, 1), randn({3, 5, 4}, 2)});
}

TEST(GradCheck, GridNeighbours) {
  // 4 x 4 grid, 3 x 3 and 5 x 5 neighbourhoods: border cells read zero padding, interior cells are
  // copied into up to 9 (25) rows, so the backward must add every copy.
  gradcheck("grid_neighbours k3",
            [](Graph& g, const std::vector<Var>& v) { return ag::grid_neighbours(g, v[0], 4, 3); },
            {randn({2, 16, 3}, 1)});
  gradcheck("grid_neighbours k5",
            [](Graph& g, const std::vector<Var>& v) { return ag::grid_neighbours(g, v[0], 4, 5); },
            {randn({1, 16, 2}, 2)});
  // Forward: cell (1, 2)'s slot (dy 0, dx 2) is cell (0, 3); cell (0, 0)'s slot 0 is padding.
  Arena arena;
  Graph g(arena);
  Tensor x = randn({1, 16, 2}, 3);
  Var y = ag::grid_neighbours(g, g.constant(x), 4, 3);
  ASSERT_EQ(g.shape(y), Shape({1, 16, 18}));
  EXPECT_EQ(g.data(y)[(1 * 4 + 2) * 18 + 2 * 2 + 1], x.f32()[(0 * 4 + 3) * 2 + 1]);
  EXPECT_EQ(g.data(y)[0], 0.f);
  EXPECT_EQ(g.data(y)[4 * 2], x.f32()[0]);  // cell (0, 0)'s centre slot is itself
}

TEST(GradCheck, DistanceLogits) {
  // s [2, 5, 3], c [2, 3, 2], beta [3] with both signs; pos is a constant [5, 2].
  Tensor pos = randn({5, 2}, 4, 0.6f);
  gradcheck("distance_logits",
            [&](Graph& g, const std::vector<Var>& v) { return ag::distance_logits(g, v[0], v[1], v[2], pos); },
            {randn({2, 5, 3}, 1), randn({2, 3, 2}, 2, 0.5f), randn({3}, 3)});
  // Forward against the definition at one element.
  Arena arena;
  Graph g(arena);
  Tensor s = randn({1, 5, 3}, 5), c = randn({1, 3, 2}, 6), beta = randn({3}, 7);
  Var y = ag::distance_logits(g, g.constant(s), g.constant(c), g.constant(beta), pos);
  ASSERT_EQ(g.shape(y), Shape({1, 3, 5}));
  const int h = 2, p = 4;
  const float dx = pos.f32()[2 * p] - c.f32()[2 * h], dy = pos.f32()[2 * p + 1] - c.f32()[2 * h + 1];
  EXPECT_NEAR(g.data(y)[h * 5 + p], s.f32()[p * 3 + h] - beta.f32()[h] * (dx * dx + dy * dy), 1e-6f);
}
