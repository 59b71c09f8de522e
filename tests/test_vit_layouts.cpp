// ViT classifiers from other frameworks' checkpoints: torchvision's
// VisionTransformer (fixture from tools/fixtures/gen_torchvision_vit.py,
// logits computed by torchvision itself) and the same weights under Hugging
// Face ViTForImageClassification names with a config.json.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/vit_trainer.h"
#include "test_util.h"

using namespace mmkit;

static void expect_logits(Vit& vit, const io::SafetensorsFile& f, const std::string& what) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var logits = vit_forward(g, vit, g.constant(io::read_tensor_f32(f, "input.x")));
  Tensor want = io::read_tensor_f32(f, "output.logits");
  EXPECT_TRUE(test::close(what, g.value(logits), want, 1e-4f * test::max_abs(want), 0));
}

TEST(VitLayouts, TorchvisionVisionTransformer) {
  std::string path = test::fixture("torchvision_vit.safetensors");
  Vit vit = load_vit(path);
  EXPECT_TRUE(vit.cfg.norm_first);
  EXPECT_EQ(vit.cfg.heads, 2);
  EXPECT_EQ(vit.cfg.image_size, 32);
  EXPECT_EQ(vit.cfg.preprocess, "imagenet");
  expect_logits(vit, io::SafetensorsFile::open(path), "torchvision logits");
}

TEST(VitLayouts, HuggingFaceViTForImageClassification) {
  io::SafetensorsFile src = io::SafetensorsFile::open(test::fixture("torchvision_vit.safetensors"));
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& t : src.tensors()) {
    std::string n = t.name;
    Tensor x = io::read_tensor_f32(src, n);
    auto layer = [&](const std::string& rest) {
      size_t a = std::strlen("encoder.layers.encoder_layer_");
      size_t dot = n.find('.', a);
      return "vit.encoder.layer." + n.substr(a, dot - a) + "." + rest;
    };
    auto suffix = [&]() { return n.substr(n.rfind('.') + 1); };
    if (n == "conv_proj.weight" || n == "conv_proj.bias") n = "vit.embeddings.patch_embeddings.projection." + suffix();
    else if (n == "class_token") n = "vit.embeddings.cls_token";
    else if (n == "encoder.pos_embedding") n = "vit.embeddings.position_embeddings";
    else if (n.rfind("encoder.ln.", 0) == 0) n = "vit.layernorm." + suffix();
    else if (n.rfind("heads.head.", 0) == 0) n = "classifier." + suffix();
    else if (n.find(".ln_1.") != std::string::npos) n = layer("layernorm_before." + suffix());
    else if (n.find(".ln_2.") != std::string::npos) n = layer("layernorm_after." + suffix());
    else if (n.find(".mlp.0.") != std::string::npos) n = layer("intermediate.dense." + suffix());
    else if (n.find(".mlp.3.") != std::string::npos) n = layer("output.dense." + suffix());
    else if (n.find("out_proj") != std::string::npos) n = layer("attention.output.dense." + suffix());
    else if (n.find("in_proj_") != std::string::npos) {
      std::string kind = n.find("weight") != std::string::npos ? "weight" : "bias";
      int64_t per = x.numel() / 3;
      const char* parts[3] = {"query", "key", "value"};
      for (int i = 0; i < 3; ++i) {
        Shape s = x.shape();
        s[0] /= 3;
        Tensor p = Tensor::empty(s);
        std::memcpy(p.raw(), x.f32() + i * per, size_t(per) * 4);
        out.push_back({layer(std::string("attention.attention.") + parts[i] + "." + kind), p});
      }
      continue;
    } else if (n.rfind("input.", 0) != 0 && n.rfind("output.", 0) != 0) {
      FAIL() << "unmapped torchvision tensor " << n;
    }
    out.push_back({n, x});
  }
  char tmpl[] = "/tmp/mmkit_hfvit_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<io::TensorToWrite> w;
  for (auto& [n, t] : out) w.push_back({n, DType::f32, t.shape().vec(), t.raw()});
  io::write_safetensors(dir + "/model.safetensors", w);
  std::ofstream(dir + "/config.json") << R"({"hidden_size": 16, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 32, "image_size": 32, "patch_size": 8,
    "num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu",
    "id2label": {"0": "a", "1": "b", "2": "c", "3": "d", "4": "e"}})";
  Vit vit = load_vit(dir);
  EXPECT_EQ(vit.cfg.class_names.size(), 5u);
  expect_logits(vit, src, "HF ViT logits");
}

TEST(VitLayouts, TorchvisionWithoutHeadCountIsAClearError) {
  io::SafetensorsFile src = io::SafetensorsFile::open(test::fixture("torchvision_vit.safetensors"));
  std::vector<io::TensorToWrite> w;
  for (const auto& t : src.tensors()) w.push_back({t.name, t.dtype, t.shape, t.data});
  char tmpl[] = "/tmp/mmkit_tvvit_XXXXXX";
  std::string path = std::string(mkdtemp(tmpl)) + "/vit_b_16.safetensors";
  io::write_safetensors(path, w);  // no metadata
  try {
    load_vit(path);
    FAIL() << "loaded without a head count";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--heads"), std::string::npos) << e.what();
  }
  Vit vit = load_vit(path, 2);
  expect_logits(vit, src, "torchvision logits with --heads");
}
