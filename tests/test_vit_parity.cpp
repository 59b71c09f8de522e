// ViT forward, loss and every gradient against PyTorch
// (tests/fixtures/vit_*.safetensors from tools/fixtures/gen_fixtures.py,
// nn.TransformerEncoderLayer inside). Tolerances (issue #2): logits within
// 1e-4 of their scale, gradients within 1e-3 of each gradient's scale.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/vit.h"
#include "test_util.h"

using namespace mmkit;

static void check_vit_fixture(const std::string& file_name) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture(file_name));
  nlohmann::json c = nlohmann::json::parse(f.metadata().at("config"));
  VitConfig cfg;
  cfg.image_size = c["image"];
  cfg.patch_size = c["patch"];
  cfg.channels = c["chans"];
  cfg.dim = c["dim"];
  cfg.depth = c["depth"];
  cfg.heads = c["heads"];
  cfg.mlp_dim = c["mlp"];
  cfg.num_classes = c["classes"];
  cfg.norm_first = c["norm_first"];
  cfg.eps = c["layer_norm_eps"];
  cfg.activation = c["activation"];
  float smoothing = c["label_smoothing"];

  Vit vit;
  vit.init(cfg, 123);
  nn::ParamList params = vit.parameters();
  io::LoadOptions opt;
  opt.ignore_prefixes = {"input.", "output.", "grad."};
  io::load_parameters(f, params, opt);

  Arena arena;
  Graph g(arena);
  Tensor x = io::read_tensor_f32(f, "input.x");
  Tensor y = io::read_tensor_i32(f, "input.y");
  Var xv = g.leaf(x);
  Var logits = vit_forward(g, vit, xv);
  Var loss = ag::cross_entropy(g, logits, y, smoothing);
  for (Parameter* p : params) p->grad.zero();
  g.backward(loss);

  Tensor want_logits = io::read_tensor_f32(f, "output.logits");
  float scale = test::max_abs(want_logits);
  EXPECT_TRUE(test::close("logits", g.value(logits), want_logits, 1e-4f * scale, 0));
  EXPECT_TRUE(test::close("loss", g.value(loss), io::read_tensor_f32(f, "output.loss").reshape(Shape{1}),
                          1e-5f, 1e-5f));
  for (Parameter* p : params) {
    Tensor want = io::read_tensor_f32(f, "grad." + p->name);
    EXPECT_TRUE(test::close("grad." + p->name, p->grad, want, 1e-3f * test::max_abs(want), 0));
  }
  Tensor want_dx = io::read_tensor_f32(f, "grad.input.x");
  EXPECT_TRUE(test::close("grad.input.x", g.grad(xv), want_dx, 1e-3f * test::max_abs(want_dx), 0));
}

TEST(VitParity, PostNormMatchesPyTorch) { check_vit_fixture("vit_postnorm.safetensors"); }
TEST(VitParity, PreNormMatchesPyTorch) { check_vit_fixture("vit_prenorm.safetensors"); }

TEST(VitParity, WrongCheckpointShapesAreReportedByName) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("vit_postnorm.safetensors"));
  VitConfig cfg;
  cfg.image_size = 12;
  cfg.patch_size = 4;
  cfg.channels = 1;
  cfg.dim = 32;  // fixture has 16
  cfg.depth = 2;
  cfg.heads = 2;
  cfg.mlp_dim = 32;
  cfg.num_classes = 5;
  Vit vit;
  vit.init(cfg, 1);
  io::LoadOptions opt;
  opt.ignore_prefixes = {"input.", "output.", "grad."};
  try {
    io::load_parameters(f, vit.parameters(), opt);
    FAIL() << "mismatched checkpoint loaded without error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("tensor 'cls_token': got [1, 1, 16], expected [1, 1, 32]"), std::string::npos) << m;
  }
}
