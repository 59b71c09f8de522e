// CrossModalAttention and MultimodalFusion against PyTorch
// (tests/fixtures/fusion.safetensors from tools/fixtures/gen_fusion_fixture.py):
// outputs, attention maps and every gradient within 1e-4 of each tensor's
// scale (issue #5, acceptance 1), with key-padding masks on the text side.
#include <gtest/gtest.h>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/nn/cross_modal_attention.h"
#include "mmkit/nn/multimodal_fusion.h"
#include "test_util.h"

using namespace mmkit;

namespace {

io::SafetensorsFile open_fixture() { return io::SafetensorsFile::open(test::fixture("fusion.safetensors")); }

// k_proj.bias adds q.b_k to every score of a query row, which softmax ignores:
// its true gradient is 0 (the reference holds ~1e-16) and float32 leaves
// rounding noise ~1e-8 of the other gradients' size, so it gets an absolute
// bound instead of a relative one.
::testing::AssertionResult close_grad(const std::string& what, const Tensor& got, const Tensor& want) {
  const bool zero_by_math = what.size() >= 11 && what.compare(what.size() - 11, 11, "k_proj.bias") == 0;
  if (zero_by_math) return test::close(what, got, want, 1e-6f, 0);
  return test::close_scaled(what, got, want);
}

Tensor u8_mask(const io::SafetensorsFile& f, const std::string& name) {
  Tensor m = io::read_tensor_i32(f, name);
  Tensor out = Tensor::empty(m.shape(), DType::u8);
  for (int64_t i = 0; i < m.numel(); ++i) out.ptr<uint8_t>()[i] = uint8_t(m.ptr<int32_t>()[i] != 0);
  return out;
}

void check_grads(const io::SafetensorsFile& f, const std::string& group, nn::ParamList& params) {
  for (Parameter* p : params) {
    Tensor want = io::read_tensor_f32(f, group + "grad." + p->name);
    EXPECT_TRUE(close_grad(group + "grad." + p->name, p->grad, want));
  }
}

}  // namespace

TEST(FusionParity, CrossModalAttention) {
  auto f = open_fixture();
  Rng rng(1);
  nn::CrossModalAttention m;
  m.init("", 8, 2, rng, 6);
  nn::ParamList params;
  m.collect(params);
  ASSERT_EQ(params.size(), 8u);
  test::load_fixture_group(f, "cma.", params);
  Tensor pad = u8_mask(f, "cma.key_padding");
  Arena arena;
  Graph g(arena);
  Var q = g.leaf(io::read_tensor_f32(f, "cma.queries"));
  Var c = g.leaf(io::read_tensor_f32(f, "cma.context"));
  Tensor probs;
  Var out = nn::cross_modal_attention(g, m, q, c, {&pad, &probs});
  EXPECT_TRUE(test::close_scaled("out", g.value(out), io::read_tensor_f32(f, "cma.out")));
  EXPECT_TRUE(test::close_scaled("probs", probs, io::read_tensor_f32(f, "cma.probs")));
  // Padded keys get (numerically) zero weight.
  EXPECT_LT(probs.f32()[4], 1e-30f);
  EXPECT_LT(probs.f32()[5], 1e-30f);
  g.backward(out, io::read_tensor_f32(f, "cma.g"));
  EXPECT_TRUE(test::close_scaled("grad.queries", g.grad(q), io::read_tensor_f32(f, "cma.grad.queries")));
  EXPECT_TRUE(test::close_scaled("grad.context", g.grad(c), io::read_tensor_f32(f, "cma.grad.context")));
  check_grads(f, "cma.", params);
}

namespace {

// Fusion groups: forward both streams, backward from sum(t*g_t) + sum(v*g_v).
void check_fusion_group(const std::string& group, bool norm_first, int layers, bool single) {
  auto f = open_fixture();
  nn::FusionConfig c;
  c.dim = 8;
  c.heads = 2;
  c.mlp_dim = 16;
  c.layers = layers;
  c.norm_first = norm_first;
  Rng rng(2);
  nn::MultimodalFusion m;
  m.init("", c, rng);
  nn::ParamList params;
  if (single) {
    m.layers[0].collect(params);
    for (Parameter* p : params) p->name = p->name.substr(std::string("layers.0.").size());
  } else {
    m.collect(params);
  }
  test::load_fixture_group(f, group, params);
  Tensor pad = u8_mask(f, group + "text_pad");
  Arena arena;
  Graph g(arena);
  Var t = g.leaf(io::read_tensor_f32(f, group + "text"));
  Var v = g.leaf(io::read_tensor_f32(f, group + "image"));
  nn::FusionOut o = single ? nn::fusion_layer(g, m.layers[0], c, t, v, &pad)
                           : nn::multimodal_fusion(g, m, t, v, &pad);
  EXPECT_TRUE(test::close_scaled(group + "out_text", g.value(o.text), io::read_tensor_f32(f, group + "out_text")));
  EXPECT_TRUE(test::close_scaled(group + "out_image", g.value(o.image), io::read_tensor_f32(f, group + "out_image")));
  // One scalar loss L = sum(t*g_t) + sum(v*g_v), built from graph ops.
  Var gt = g.constant(io::read_tensor_f32(f, group + "g_text"));
  Var gv = g.constant(io::read_tensor_f32(f, group + "g_image"));
  Var lt = ag::mean_tokens(g, ag::mul(g, o.text, gt));  // [B, D], mean over Tt
  Var lv = ag::mean_tokens(g, ag::mul(g, o.image, gv));
  const int64_t Tt = g.shape(o.text)[1], Tv = g.shape(o.image)[1];
  Var loss_in = ag::concat(g, {ag::scale(g, lt, float(Tt)), ag::scale(g, lv, float(Tv))}, 1);  // [B, 2D]
  Tensor ones = Tensor::zeros(g.shape(loss_in));
  for (int64_t i = 0; i < ones.numel(); ++i) ones.f32()[i] = 1.f;
  g.backward(loss_in, ones);
  EXPECT_TRUE(test::close_scaled(group + "grad.text", g.grad(t), io::read_tensor_f32(f, group + "grad.text")));
  EXPECT_TRUE(test::close_scaled(group + "grad.image", g.grad(v), io::read_tensor_f32(f, group + "grad.image")));
  check_grads(f, group, params);
}

}  // namespace

TEST(FusionParity, PreNormLayer) { check_fusion_group("layer_pre.", true, 1, true); }
TEST(FusionParity, PostNormLayer) { check_fusion_group("layer_post.", false, 1, true); }
TEST(FusionParity, PreNormStackWithFinalNorms) { check_fusion_group("stack_pre.", true, 2, false); }

TEST(FusionParity, ProbesAndShapeErrors) {
  nn::FusionConfig c;
  c.dim = 8;
  c.heads = 2;
  c.mlp_dim = 16;
  c.layers = 2;
  Rng rng(3);
  nn::MultimodalFusion m;
  m.init("fusion", c, rng);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Tensor t = Tensor::zeros(Shape{3, 4, 8}), v = Tensor::zeros(Shape{3, 9, 8});
  nn::FusionProbes probes;
  nn::multimodal_fusion(g, m, g.constant(t), g.constant(v), nullptr, &probes);
  ASSERT_EQ(probes.text_to_image.size(), 2u);
  EXPECT_EQ(probes.text_to_image[1].shape(), (Shape{3, 2, 4, 9}));
  EXPECT_EQ(probes.image_to_text[0].shape(), (Shape{3, 2, 9, 4}));
  Tensor bad = Tensor::zeros(Shape{3, 9, 7});
  EXPECT_THROW(nn::multimodal_fusion(g, m, g.constant(t), g.constant(bad), nullptr), Error);
}

TEST(FusionParity, ZeroInitResidualStartsAsIdentity) {
  // Pre-norm with zero-initialised residual branches: each stream is exactly its input
  // through the final LayerNorm (whose weight is 1 and bias 0 at init).
  nn::FusionConfig c;
  c.dim = 8;
  c.heads = 2;
  c.mlp_dim = 16;
  c.layers = 2;
  c.norm_first = true;
  c.zero_init_residual = true;
  Rng rng(4);
  nn::MultimodalFusion m;
  m.init("", c, rng);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Tensor t = Tensor::empty(Shape{2, 3, 8}), v = Tensor::empty(Shape{2, 5, 8});
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = rng.normal();
  for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] = rng.normal();
  nn::FusionOut o = nn::multimodal_fusion(g, m, g.constant(t), g.constant(v), nullptr);
  Var tn = nn::layer_norm(g, m.text_norm, g.constant(t)), vn = nn::layer_norm(g, m.image_norm, g.constant(v));
  EXPECT_TRUE(test::close("text", g.value(o.text), g.value(tn), 1e-6f, 0));
  EXPECT_TRUE(test::close("image", g.value(o.image), g.value(vn), 1e-6f, 0));
}
