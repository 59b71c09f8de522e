// Caption decoder (models/captioner.h: embeddings, nn.TransformerDecoderLayer
// stack, LM head) against PyTorch: logits, loss, every parameter gradient and
// the gradient into the image memory (tests/fixtures/decoder_*.safetensors
// from tools/fixtures/gen_decoder_fixture.py). Tolerance (issue #6,
// acceptance 1): 1e-4 relative to each tensor's scale (max |reference|).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/captioner.h"
#include "test_util.h"

using namespace mmkit;

namespace {

CaptionDecoderConfig fixture_config(const io::SafetensorsFile& f) {
  nlohmann::json c = nlohmann::json::parse(f.metadata().at("config"));
  CaptionDecoderConfig cfg;
  cfg.vocab_size = c["vocab"];
  cfg.dim = c["dim"];
  cfg.depth = c["depth"];
  cfg.heads = c["heads"];
  cfg.mlp_dim = c["mlp"];
  cfg.max_len = c["max_len"];
  cfg.norm_first = c["norm_first"];
  cfg.tie_embeddings = c["tie"];
  cfg.eps = c["layer_norm_eps"];
  return cfg;
}

void check_fixture(const std::string& name) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture(name));
  CaptionDecoderConfig cfg = fixture_config(f);
  float smoothing = nlohmann::json::parse(f.metadata().at("config"))["label_smoothing"];
  CaptionDecoder dec;
  Rng rng(5);
  dec.init(cfg, rng);
  nn::ParamList params;
  dec.collect(params);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"input.", "output.", "grad."};
  io::load_parameters(f, params, lo);  // also fails on any missing or extra parameter

  Tensor ids = io::read_tensor_i32(f, "input.ids");
  Tensor pad_i = io::read_tensor_i32(f, "input.pad");
  Tensor pad = Tensor::zeros(pad_i.shape(), DType::u8);
  for (int64_t i = 0; i < pad.numel(); ++i) pad.ptr<uint8_t>()[i] = pad_i.ptr<int32_t>()[i] != 0;
  Tensor targets = io::read_tensor_i32(f, "input.targets");
  Tensor memory = io::read_tensor_f32(f, "input.memory");

  Arena arena;
  Graph g(arena);
  Var mem = g.leaf(memory);
  CaptionDecodeOptions opt;
  opt.key_padding = &pad;
  Var logits = caption_decoder_forward(g, dec, ids, mem, opt);
  const int64_t V = cfg.vocab_size;
  Var flat = ag::reshape(g, logits, Shape{g.value(logits).numel() / V, V});
  Var loss = ag::cross_entropy(g, flat, targets.reshape(Shape{targets.numel()}), smoothing);
  for (Parameter* p : params) p->grad.zero();
  g.backward(loss);

  Tensor want_logits = io::read_tensor_f32(f, "output.logits");
  EXPECT_TRUE(test::close("logits", g.value(logits), want_logits, 1e-4f * test::max_abs(want_logits), 0));
  EXPECT_TRUE(test::close("loss", g.value(loss), io::read_tensor_f32(f, "output.loss").reshape(Shape{1}),
                          0, 1e-5f));
  int checked = 0;
  for (Parameter* p : params) {
    Tensor want = io::read_tensor_f32(f, "grad." + p->name);
    EXPECT_TRUE(test::close("grad." + p->name, p->grad, want, 1e-4f * test::max_abs(want), 0));
    ++checked;
  }
  Tensor want_dm = io::read_tensor_f32(f, "grad.input.memory");
  EXPECT_TRUE(test::close("grad.input.memory", g.grad(mem), want_dm, 1e-4f * test::max_abs(want_dm), 0));
  // Every layer has 18 tensors (2 x 4 attention, 4 feed-forward, 6 norm).
  EXPECT_EQ(checked, 2 + 18 * cfg.depth + (cfg.norm_first ? 2 : 0) + (cfg.tie_embeddings ? 1 : 2));
}

}  // namespace

TEST(DecoderParity, PostNormTiedMatchesPyTorch) { check_fixture("decoder_postnorm_tied.safetensors"); }
TEST(DecoderParity, PreNormUntiedMatchesPyTorch) { check_fixture("decoder_prenorm_untied.safetensors"); }

// Padding tokens after a sequence's end cannot change the logits of the
// tokens before it (causal mask), with or without the key-padding mask.
TEST(DecoderParity, PaddingDoesNotLeakBackwards) {
  CaptionDecoderConfig cfg;
  cfg.vocab_size = 9;
  cfg.dim = 16;
  cfg.depth = 2;
  cfg.heads = 2;
  cfg.mlp_dim = 32;
  cfg.max_len = 6;
  CaptionDecoder dec;
  Rng rng(3);
  dec.init(cfg, rng);
  Tensor mem = Tensor::empty(Shape{1, 4, 16});
  Rng r2(9);
  for (int64_t i = 0; i < mem.numel(); ++i) mem.f32()[i] = r2.normal();
  Tensor ids1 = Tensor::empty(Shape{1, 6}, DType::i32), ids2 = Tensor::empty(Shape{1, 6}, DType::i32);
  int32_t s1[6] = {1, 5, 6, 0, 0, 0}, s2[6] = {1, 5, 6, 7, 8, 4};
  for (int i = 0; i < 6; ++i) {
    ids1.ptr<int32_t>()[i] = s1[i];
    ids2.ptr<int32_t>()[i] = s2[i];
  }
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Tensor l1 = g.value(caption_decoder_forward(g, dec, ids1, g.constant(mem)));
  Tensor l2 = g.value(caption_decoder_forward(g, dec, ids2, g.constant(mem)));
  for (int64_t i = 0; i < 3 * 9; ++i) EXPECT_EQ(l1.f32()[i], l2.f32()[i]) << i;
}
