// transformer_encoder_layer_at (one output position of an encoder layer, used
// for class-token pooling in CLIP's last image block) against the full layer:
// the same row and the same gradients for every parameter and for the input,
// for both normalisation placements, and for the causal case's last position.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/graph.h"
#include "mmkit/core/rng.h"
#include "mmkit/nn/transformer_encoder_layer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

struct Result {
  Tensor out;                 // [B, D] at position t
  Tensor dx;                  // [B, T, D]
  std::vector<Tensor> grads;  // per parameter
};

// Gradients of sum(out[:, t, :] * r), through either the full layer or the single-row one.
Result run(nn::TransformerEncoderLayer& layer, const Tensor& x, const Tensor& r, int64_t t, bool causal, bool at) {
  nn::ParamList ps;
  layer.collect(ps);
  for (Parameter* p : ps) p->grad = Tensor::zeros(p->value.shape());
  Arena arena;
  Graph g(arena);
  Var xv = g.leaf(x);
  nn::AttentionMasks masks;
  masks.causal = causal;
  const Shape s = x.shape();
  Var row;
  if (at) {
    row = ag::reshape(g, nn::transformer_encoder_layer_at(g, layer, xv, t, masks), Shape{s[0], s[2]});
  } else {
    row = ag::select_token(g, nn::transformer_encoder_layer(g, layer, xv, masks), t);
  }
  g.backward(row, r);  // d/d(row) of sum(row * r) is r
  Result res;
  res.out = Tensor::zeros(Shape{s[0], s[2]});
  std::memcpy(res.out.raw(), g.value(row).raw(), res.out.nbytes());
  res.dx = Tensor::zeros(s);
  std::memcpy(res.dx.raw(), g.grad(xv).raw(), res.dx.nbytes());
  for (Parameter* p : ps) {
    Tensor c = Tensor::zeros(p->grad.shape());
    std::memcpy(c.raw(), p->grad.raw(), c.nbytes());
    res.grads.push_back(c);
  }
  return res;
}

void check(bool norm_first, bool causal, int64_t t) {
  nn::EncoderLayerConfig cfg;
  cfg.dim = 16;
  cfg.heads = 4;
  cfg.mlp_dim = 40;
  cfg.norm_first = norm_first;
  Rng rng(7);
  nn::TransformerEncoderLayer layer;
  layer.init("layer", cfg, rng);
  const int64_t B = 3, T = 7, D = cfg.dim;
  Tensor x = Tensor::empty(Shape{B, T, D}), r = Tensor::empty(Shape{B, D});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
  for (int64_t i = 0; i < r.numel(); ++i) r.f32()[i] = rng.normal();
  const Result full = run(layer, x, r, t, causal, false);
  const Result one = run(layer, x, r, t, causal, true);
  const std::string c = std::string(norm_first ? "pre-norm" : "post-norm") + (causal ? " causal" : "") +
                        " t=" + std::to_string(t);
  EXPECT_TRUE(test::close(c + " output row", one.out, full.out, 1e-5f, 1e-5f));
  EXPECT_TRUE(test::close(c + " d x", one.dx, full.dx, 1e-5f, 1e-5f));
  nn::ParamList ps;
  layer.collect(ps);
  for (size_t k = 0; k < ps.size(); ++k)
    EXPECT_TRUE(test::close(c + " d " + ps[k]->name, one.grads[k], full.grads[k],
                            1e-5f * std::max(1.f, test::max_abs(full.grads[k])), 1e-5f));
}

}  // namespace

TEST(EncoderLayerAt, PreNormClassTokenMatchesFullLayer) { check(true, false, 0); }
TEST(EncoderLayerAt, PreNormMiddleTokenMatchesFullLayer) { check(true, false, 4); }
TEST(EncoderLayerAt, PostNormMatchesFullLayer) { check(false, false, 0); }
TEST(EncoderLayerAt, CausalLastPositionMatchesFullLayer) { check(true, true, 6); }

TEST(EncoderLayerAt, CausalRefusesAnEarlierPosition) {
  nn::EncoderLayerConfig cfg;
  cfg.dim = 8;
  cfg.heads = 2;
  cfg.mlp_dim = 16;
  Rng rng(1);
  nn::TransformerEncoderLayer layer;
  layer.init("layer", cfg, rng);
  Arena arena;
  Graph g(arena);
  Var x = g.constant(Tensor::zeros(Shape{1, 5, 8}));
  nn::AttentionMasks masks;
  masks.causal = true;
  EXPECT_THROW(nn::transformer_encoder_layer_at(g, layer, x, 2, masks), Error);
}
