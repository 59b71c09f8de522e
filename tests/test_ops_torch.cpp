// Every op (and nn.MultiheadAttention in four configurations) against
// PyTorch: forward outputs and input/weight gradients of sum(out * g) from
// tests/fixtures/ops.safetensors (tools/fixtures/gen_fixtures.py).
// Tolerance: 1e-5 absolute + 1e-4 relative (references are float64).
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "mmkit/autograd/functions.h"
#include "mmkit/nn/multihead_attention.h"
#include "test_util.h"

using namespace mmkit;

namespace {

constexpr float kAbs = 1e-5f, kRel = 1e-4f;

struct Fixture {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("ops.safetensors"));
  Tensor t(const std::string& n) { return io::read_tensor_f32(f, n); }
  Tensor ids(const std::string& n) { return io::read_tensor_i32(f, n); }
};

// Runs `build` with the named inputs as leaves, seeds backward with
// "<op>.g", and compares "<op>.out" and "<op>.grad.<input>".
void check_op(Fixture& fx, const std::string& op, const std::vector<std::string>& inputs,
              const std::function<Var(Graph&, const std::vector<Var>&)>& build) {
  Arena arena;
  Graph g(arena);
  std::vector<Var> vs;
  for (auto& n : inputs) vs.push_back(g.leaf(fx.t(op + "." + n)));
  Var out = build(g, vs);
  Tensor want = fx.t(op + ".out");
  ASSERT_EQ(g.value(out).numel(), want.numel()) << op;
  EXPECT_TRUE(test::close(op + ".out", g.value(out), want, kAbs, kRel));
  g.backward(out, fx.t(op + ".g").reshape(g.value(out).shape()));
  for (size_t k = 0; k < inputs.size(); ++k) {
    std::string gname = op + ".grad." + inputs[k];
    if (!fx.f.find(gname)) continue;
    EXPECT_TRUE(test::close(gname, g.grad(vs[k]), fx.t(gname), kAbs, kRel));
  }
}

}  // namespace

TEST(OpsVsTorch, Elementwise) {
  Fixture fx;
  check_op(fx, "gelu", {"x"}, [](Graph& g, auto& v) { return ag::gelu(g, v[0]); });
  check_op(fx, "quick_gelu", {"x"}, [](Graph& g, auto& v) { return ag::quick_gelu(g, v[0]); });
  check_op(fx, "softmax", {"x"}, [](Graph& g, auto& v) { return ag::softmax(g, v[0]); });
  check_op(fx, "log_softmax", {"x"}, [](Graph& g, auto& v) { return ag::log_softmax(g, v[0]); });
}

TEST(OpsVsTorch, LayerNormLinearEmbedding) {
  Fixture fx;
  check_op(fx, "layernorm", {"x", "weight", "bias"},
           [](Graph& g, auto& v) { return ag::layernorm(g, v[0], v[1], v[2], 1e-5f); });
  check_op(fx, "linear", {"x", "weight", "bias"},
           [](Graph& g, auto& v) { return ag::linear(g, v[0], v[1], v[2]); });
  Tensor ids = fx.ids("embedding.ids");
  check_op(fx, "embedding", {"weight"}, [&](Graph& g, auto& v) { return ag::embedding(g, v[0], ids); });
}

TEST(OpsVsTorch, CrossEntropyWithLabelSmoothing) {
  Fixture fx;
  Tensor targets = fx.ids("cross_entropy.targets");
  check_op(fx, "cross_entropy", {"logits"},
           [&](Graph& g, auto& v) { return ag::cross_entropy(g, v[0], targets, 0.1f); });
}

TEST(OpsVsTorch, PatchConv) {
  Fixture fx;
  // PyTorch's conv output is [B, D, gh, gw]; ours [B, P, D]: compare transposed.
  check_op(fx, "patch_conv", {"x", "weight", "bias"}, [](Graph& g, auto& v) {
    return ag::transpose(g, ag::patch_embed(g, v[0], v[1], v[2], 4), 1, 2);
  });
  check_op(fx, "patch_conv_nobias", {"x", "weight"}, [](Graph& g, auto& v) {
    return ag::transpose(g, ag::patch_embed(g, v[0], v[1], Var{}, 2), 1, 2);
  });
}

TEST(OpsVsTorch, PoolingConcat) {
  Fixture fx;
  check_op(fx, "mean_tokens", {"x"}, [](Graph& g, auto& v) { return ag::mean_tokens(g, v[0]); });
  check_op(fx, "concat", {"a", "b"}, [](Graph& g, auto& v) { return ag::concat(g, {v[0], v[1]}, 1); });
}

// nn.MultiheadAttention: weights are loaded into the block's Parameters and
// their gradients compared too.
static void check_mha(const std::string& op, bool causal, bool padded, bool cross) {
  Fixture fx;
  Rng rng(0);
  nn::MultiheadAttention m;
  int64_t D = 8, kd = cross ? 6 : 8;
  m.init("", D, 2, rng, /*packed=*/!cross, kd, kd);
  auto params = std::vector<Parameter*>();
  m.collect(params);
  for (Parameter* p : params) p->value = fx.t(op + "." + p->name);
  Tensor pad;
  nn::AttentionMasks masks;
  masks.causal = causal;
  if (padded) {
    Tensor m64 = fx.ids(op + ".key_padding_mask");
    pad = Tensor::empty(m64.shape(), DType::u8);
    for (int64_t i = 0; i < m64.numel(); ++i) pad.ptr<uint8_t>()[i] = uint8_t(m64.ptr<int32_t>()[i]);
    masks.key_padding = &pad;
  }
  Arena arena;
  Graph g(arena);
  Var out, x, mem;
  if (cross) {
    x = g.leaf(fx.t(op + ".query"));
    mem = g.leaf(fx.t(op + ".memory"));
    out = nn::cross_attention(g, m, x, mem, masks);
  } else {
    x = g.leaf(fx.t(op + ".x"));
    out = nn::self_attention(g, m, x, masks);
  }
  EXPECT_TRUE(test::close(op + ".out", g.value(out), fx.t(op + ".out"), kAbs, kRel));
  g.backward(out, fx.t(op + ".g"));
  EXPECT_TRUE(test::close(op + ".grad.x", g.grad(x), fx.t(op + (cross ? ".grad.query" : ".grad.x")), kAbs, kRel));
  if (cross) {
    EXPECT_TRUE(test::close(op + ".grad.memory", g.grad(mem), fx.t(op + ".grad.memory"), kAbs, kRel));
  }
  for (Parameter* p : params)
    EXPECT_TRUE(test::close(op + ".grad." + p->name, p->grad, fx.t(op + ".grad." + p->name), kAbs, kRel));
}

TEST(OpsVsTorch, MultiheadSelfAttention) { check_mha("mha_self", false, false, false); }
TEST(OpsVsTorch, MultiheadCausalAttention) { check_mha("mha_causal", true, false, false); }
TEST(OpsVsTorch, MultiheadPaddedAttention) { check_mha("mha_padding", false, true, false); }
TEST(OpsVsTorch, MultiheadCrossAttentionSeparateWeights) { check_mha("mha_cross", false, false, true); }
