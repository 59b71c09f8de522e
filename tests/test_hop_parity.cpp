// Two-hop spatial attention (nn/hop_attention.h) against PyTorch's direct form: nn.Conv2d for
// the local features, softmaxes over the cells, the distance term written out
// (tests/fixtures/hop.safetensors from tools/fixtures/gen_hop_fixture.py). Output, both hops'
// attention and every gradient within 1e-4 of each tensor's scale; also with the count readout,
// and in the per-image form (local features and count once per image, gathered per question).
#include <gtest/gtest.h>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/nn/hop_attention.h"
#include "test_util.h"

using namespace mmkit;

namespace {

void check_group(const std::string& group, const nn::HopConfig& c) {
  auto f = io::SafetensorsFile::open(test::fixture("hop.safetensors"));
  Rng rng(3);
  nn::HopAttention m;
  m.init("", c, rng);
  nn::ParamList params;
  m.collect(params);
  test::load_fixture_group(f, group, params);
  Arena arena;
  Graph g(arena);
  Var cells = g.leaf(io::read_tensor_f32(f, group + "cells"));
  Var cond = g.leaf(io::read_tensor_f32(f, group + "cond"));
  nn::HopProbes probes;
  Var out;
  if (f.find(group + "index")) {  // per image: cells [Bi, P, C], questions index into them
    const Tensor fi = io::read_tensor_f32(f, group + "index");
    Tensor index = Tensor::empty(fi.shape(), DType::i32);
    for (int64_t i = 0; i < fi.numel(); ++i) index.ptr<int32_t>()[i] = int32_t(fi.f32()[i]);
    Var L = nn::hop_local(g, m, cells);
    Var count = nn::hop_count_cells(g, m, L);
    out = nn::hop_readout(g, m, ag::gather_rows(g, L, index), ag::gather_rows(g, count, index), cond, &probes);
  } else {
    out = nn::hop_attention(g, m, cells, cond, &probes);
  }
  EXPECT_TRUE(test::close_scaled(group + "out", g.value(out), io::read_tensor_f32(f, group + "out")));
  EXPECT_TRUE(test::close_scaled(group + "probe.find", probes.find, io::read_tensor_f32(f, group + "probe.find")));
  EXPECT_TRUE(test::close_scaled(group + "probe.relate", probes.relate, io::read_tensor_f32(f, group + "probe.relate")));
  g.backward(out, io::read_tensor_f32(f, group + "g"));
  EXPECT_TRUE(test::close_scaled(group + "grad.cells", g.grad(cells), io::read_tensor_f32(f, group + "grad.cells")));
  EXPECT_TRUE(test::close_scaled(group + "grad.cond", g.grad(cond), io::read_tensor_f32(f, group + "grad.cond")));
  for (Parameter* p : params)
    EXPECT_TRUE(test::close_scaled(group + "grad." + p->name, p->grad, io::read_tensor_f32(f, group + "grad." + p->name)));
}

// The "hop." group's sizes: cells [2, 16, 3] (a 4 x 4 grid), cond [2, 4], 5 local channels,
// 2 heads, output 6, beta_scale 2.
nn::HopConfig fixture_config() {
  nn::HopConfig c;
  c.in_dim = 3;
  c.grid = 4;
  c.channels = 5;
  c.heads = 2;
  c.cond_dim = 4;
  c.out_dim = 6;
  c.beta_scale = 2.f;
  return c;
}

}  // namespace

TEST(HopParity, TwoHeadsFourByFourGrid) { check_group("hop.", fixture_config()); }

TEST(HopParity, ThreeHeadsFiveByFiveGrid) {
  nn::HopConfig c = fixture_config();
  c.in_dim = 2;
  c.grid = 5;
  c.channels = 4;
  c.heads = 3;
  c.out_dim = 4;
  c.beta_scale = 3.f;
  check_group("hop3.", c);
}

TEST(HopParity, CountReadout) {
  nn::HopConfig c = fixture_config();
  c.count = 3;
  c.exclude = 0.5f;
  check_group("hopc.", c);
}

TEST(HopParity, PerImageLocalFeaturesGatheredPerQuestion) {
  nn::HopConfig c = fixture_config();
  c.count = 3;
  c.exclude = 1.f;
  check_group("hopi.", c);
}

TEST(HopParity, DistancePoolingOverTheCountCells) {
  nn::HopConfig c = fixture_config();
  c.count = 3;
  c.exclude = 0.2f;
  c.dist_pool = true;
  c.dist_gain = 3.f;
  c.dist_beta = 2.f;
  check_group("hopd.", c);
}

TEST(HopParity, InitialBetaSignsAlternate) {
  // beta = beta_scale * theta starts at +beta_init (nearest) for even heads, -beta_init (furthest)
  // for odd heads.
  nn::HopConfig c = fixture_config();
  c.heads = 3;
  c.beta_init = 2.f;
  c.beta_scale = 32.f;
  Rng rng(1);
  nn::HopAttention m;
  m.init("hop", c, rng);
  ASSERT_EQ(m.beta.value.shape(), Shape({3}));
  EXPECT_FLOAT_EQ(m.beta.value.f32()[0] * c.beta_scale, 2.f);
  EXPECT_FLOAT_EQ(m.beta.value.f32()[1] * c.beta_scale, -2.f);
  EXPECT_FLOAT_EQ(m.beta.value.f32()[2] * c.beta_scale, 2.f);
  EXPECT_EQ(m.beta.name, "hop.beta");
}

TEST(HopParity, RejectsWrongShapes) {
  const nn::HopConfig c = fixture_config();
  Rng rng(1);
  nn::HopAttention m;
  m.init("hop", c, rng);
  Arena arena;
  Graph g(arena);
  Var cond = g.constant(Tensor::zeros(Shape{2, 4}));
  EXPECT_NE(test::error_of([&] { nn::hop_attention(g, m, g.constant(Tensor::zeros(Shape{2, 15, 3})), cond); })
                .find("expected cells [B, 16, 3]"),
            std::string::npos);
  Var cells = g.constant(Tensor::zeros(Shape{2, 16, 3}));
  EXPECT_NE(test::error_of([&] { nn::hop_attention(g, m, cells, g.constant(Tensor::zeros(Shape{3, 4}))); })
                .find("expected cond [2, 4]"),
            std::string::npos);
  nn::HopConfig bad = c;
  bad.kernel = 2;
  EXPECT_NE(test::error_of([&] { m.init("hop", bad, rng); }).find("kernel must be odd"), std::string::npos);
  bad = c;
  bad.heads = 0;
  EXPECT_THROW(m.init("hop", bad, rng), Error);
  // The count readout's per-cell input must be [B, P, K] when configured and absent otherwise.
  nn::HopConfig cc = c;
  cc.count = 2;
  nn::HopAttention mc;
  mc.init("hop", cc, rng);
  Var L = g.constant(Tensor::zeros(Shape{2, 16, cc.channels}));
  EXPECT_NE(test::error_of([&] { nn::hop_readout(g, mc, L, {}, cond); }).find("expected count cells [2, 16, 2]"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { nn::hop_readout(g, m, L, g.constant(Tensor::zeros(Shape{2, 16, 2})), cond); })
                .find("expected count cells [2, 16, 0]"),
            std::string::npos);
  bad = c;
  bad.exclude = -1.f;
  EXPECT_NE(test::error_of([&] { m.init("hop", bad, rng); }).find("exclude must be >= 0"), std::string::npos);
  bad = c;
  bad.dist_pool = true;
  EXPECT_NE(test::error_of([&] { m.init("hop", bad, rng); }).find("dist_pool needs the count cells"), std::string::npos);
  bad = c;
  bad.count = -1;
  EXPECT_NE(test::error_of([&] { m.init("hop", bad, rng); }).find("count must be >= 0"), std::string::npos);
}
