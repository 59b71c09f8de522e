// The relation network (nn/relation_network.h) against PyTorch's direct form: g as an MLP on
// the concatenation [o_i, o_j, q] of every ordered pair (tests/fixtures/relation.safetensors from
// tools/fixtures/gen_relation_fixture.py). Output and every gradient within 1e-4 of each
// tensor's scale, so the split first layer computes the paper's function.
#include <gtest/gtest.h>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/nn/relation_network.h"
#include "test_util.h"

using namespace mmkit;

namespace {

void check_group(const std::string& group, const nn::RelationConfig& c) {
  auto f = io::SafetensorsFile::open(test::fixture("relation.safetensors"));
  Rng rng(3);
  nn::RelationNetwork m;
  m.init("", c, rng);
  nn::ParamList params;
  m.collect(params);
  test::load_fixture_group(f, group, params);
  Arena arena;
  Graph g(arena);
  Var tokens = g.leaf(io::read_tensor_f32(f, group + "tokens"));
  Var cond = c.cond_dim > 0 ? g.leaf(io::read_tensor_f32(f, group + "cond")) : Var{};
  Var out = nn::relation_network(g, m, tokens, cond);
  EXPECT_TRUE(test::close_scaled(group + "out", g.value(out), io::read_tensor_f32(f, group + "out")));
  g.backward(out, io::read_tensor_f32(f, group + "g"));
  EXPECT_TRUE(test::close_scaled(group + "grad.tokens", g.grad(tokens), io::read_tensor_f32(f, group + "grad.tokens")));
  if (c.cond_dim > 0) {
    EXPECT_TRUE(test::close_scaled(group + "grad.cond", g.grad(cond), io::read_tensor_f32(f, group + "grad.cond")));
  }
  for (Parameter* p : params) {
    const Tensor want = io::read_tensor_f32(f, group + "grad." + p->name);
    if (p->name == "pool.key.bias") {
      // key.bias adds q . b_k to every score of a head, which softmax ignores: its true gradient
      // is 0 (the reference holds ~1e-17), float32 leaves rounding noise, so an absolute bound.
      EXPECT_TRUE(test::close(group + "grad." + p->name, p->grad, want, 1e-6f, 0));
    } else {
      EXPECT_TRUE(test::close_scaled(group + "grad." + p->name, p->grad, want));
    }
  }
}

// The fixture's sizes: tokens [B, P, 6], cond [B, 4], g 3 layers of width 8, output 7.
nn::RelationConfig fixture_config() {
  nn::RelationConfig c;
  c.dim = 6;
  c.cond_dim = 4;
  c.hidden = 8;
  c.layers = 3;
  c.out_dim = 7;
  return c;
}

}  // namespace

TEST(RelationParity, ConditionedThreeLayers) { check_group("rn.", fixture_config()); }

TEST(RelationParity, UnconditionedOneLayer) {
  nn::RelationConfig c = fixture_config();
  c.cond_dim = 0;
  c.layers = 1;
  c.out_dim = 5;
  check_group("rn1.", c);
}

TEST(RelationParity, AttentionPooling) {
  nn::RelationConfig c = fixture_config();
  c.attention_heads = 2;
  check_group("rna.", c);
}

TEST(RelationParity, GeometryAndAttentionPooling) {
  nn::RelationConfig c = fixture_config();
  c.attention_heads = 2;
  c.geometry = 3;
  check_group("rng.", c);
}

TEST(RelationParity, RejectsWrongShapes) {
  nn::RelationConfig c = fixture_config();
  Rng rng(1);
  nn::RelationNetwork m;
  m.init("relation", c, rng);
  Arena arena;
  Graph g(arena);
  Var bad_tokens = g.constant(Tensor::zeros(Shape{2, 5, 7}));
  Var cond = g.constant(Tensor::zeros(Shape{2, 4}));
  EXPECT_THROW(nn::relation_network(g, m, bad_tokens, cond), Error);
  Var tokens = g.constant(Tensor::zeros(Shape{2, 5, 6}));
  EXPECT_THROW(nn::relation_network(g, m, tokens, g.constant(Tensor::zeros(Shape{3, 4}))), Error);
  EXPECT_THROW(nn::relation_network(g, m, tokens, Var{}), Error);
  nn::RelationConfig bad = c;
  bad.layers = 0;
  EXPECT_THROW(m.init("relation", bad, rng), Error);
  bad = c;
  bad.attention_heads = 3;  // 8 is not divisible by 3
  EXPECT_THROW(m.init("relation", bad, rng), Error);
  bad = c;
  bad.cond_dim = 0;
  bad.attention_heads = 2;  // no query without a conditioning vector
  EXPECT_THROW(m.init("relation", bad, rng), Error);
}
