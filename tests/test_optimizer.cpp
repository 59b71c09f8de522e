// AdamW, gradient clipping and the warmup + cosine schedule against
// torch.optim.AdamW (tests/fixtures/adamw.safetensors,
// tools/fixtures/gen_optim_fixture.py): three steps, parameters compared
// after each within 1e-6 absolute + 1e-5 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/rng.h"
#include "test_util.h"

using namespace mmkit;

TEST(AdamW, MatchesTorchThreeStepsWithClippingAndSchedule) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("adamw.safetensors"));
  Parameter w, b;
  w.name = "w";
  w.value = io::read_tensor_f32(f, "init.w");
  w.decay = true;
  b.name = "b";
  b.value = io::read_tensor_f32(f, "init.b");
  b.decay = false;
  AdamWConfig cfg;
  cfg.lr = 0.1f;
  cfg.weight_decay = 0.05f;
  AdamW opt({&w, &b}, cfg);
  for (int k = 0; k < 3; ++k) {
    std::string s = std::to_string(k);
    Tensor gw = io::read_tensor_f32(f, "grad." + s + ".w"), gb = io::read_tensor_f32(f, "grad." + s + ".b");
    std::memcpy(w.grad.raw(), gw.raw(), gw.nbytes());
    std::memcpy(b.grad.raw(), gb.raw(), gb.nbytes());
    float norm = clip_grad_norm({&w, &b}, 1.0f);
    EXPECT_NEAR(norm, io::read_tensor_f32(f, "norm." + s).f32()[0], 1e-5f * norm) << "step " << k;
    float lr = warmup_cosine_lr(k, 2, 3, 0.1f);
    EXPECT_NEAR(lr, io::read_tensor_f32(f, "lr." + s).f32()[0], 1e-7f) << "step " << k;
    opt.step(lr);
    EXPECT_TRUE(test::close("w after step " + s, w.value, io::read_tensor_f32(f, "step." + s + ".w"), 1e-6f, 1e-5f));
    EXPECT_TRUE(test::close("b after step " + s, b.value, io::read_tensor_f32(f, "step." + s + ".b"), 1e-6f, 1e-5f));
  }
}

TEST(AdamW, ScheduleShape) {
  EXPECT_FLOAT_EQ(warmup_cosine_lr(0, 10, 100, 1.f), 0.1f);
  EXPECT_FLOAT_EQ(warmup_cosine_lr(9, 10, 100, 1.f), 1.f);
  EXPECT_NEAR(warmup_cosine_lr(55, 10, 100, 1.f), 0.5f, 1e-6f);
  EXPECT_NEAR(warmup_cosine_lr(100, 10, 100, 1.f, 0.01f), 0.01f, 1e-7f);
}

// The fused step (clip factor applied on read, gradients zeroed as they are
// read) is the same arithmetic as clip_grad_norm + step + zero_grad: bit for
// bit, over two steps, with one parameter large enough for several chunks
// and threads.
TEST(AdamW, FusedClipStepZeroEqualsSeparatePasses) {
  Rng rng(5);
  auto make = [&](Parameter& p, const char* name, int64_t n, bool decay) {
    p.name = name;
    p.value = Tensor::empty(Shape{n});
    for (int64_t i = 0; i < n; ++i) p.value.f32()[i] = rng.normal();
    p.decay = decay;
  };
  Parameter a1, b1, a2, b2;
  make(a1, "a", 300000, true);
  make(b1, "b", 37, false);
  a2.name = "a", b2.name = "b";
  a2.value = Tensor::zeros(a1.value.shape());
  b2.value = Tensor::zeros(b1.value.shape());
  std::memcpy(a2.value.raw(), a1.value.raw(), a1.value.nbytes());
  std::memcpy(b2.value.raw(), b1.value.raw(), b1.value.nbytes());
  b2.decay = false;
  AdamWConfig cfg;
  cfg.lr = 0.01f;
  cfg.weight_decay = 0.1f;
  AdamW sep({&a1, &b1}, cfg), fused({&a2, &b2}, cfg);
  for (int k = 0; k < 2; ++k) {
    for (int64_t i = 0; i < a1.grad.numel(); ++i) a1.grad.f32()[i] = a2.grad.f32()[i] = 0.01f * rng.normal();
    for (int64_t i = 0; i < b1.grad.numel(); ++i) b1.grad.f32()[i] = b2.grad.f32()[i] = 0.01f * rng.normal();
    double sq = 0;
    for (Parameter* p : {&a1, &b1})
      for (int64_t i = 0; i < p->grad.numel(); ++i) sq += double(p->grad.f32()[i]) * p->grad.f32()[i];
    const float norm = grad_norm({&a2, &b2});
    EXPECT_NEAR(norm, std::sqrt(sq), 1e-6 * std::sqrt(sq));
    const float max_norm = 1.0f;
    ASSERT_GT(norm, max_norm);  // so the clip factor is exercised
    EXPECT_EQ(clip_grad_norm({&a1, &b1}, max_norm), norm);
    sep.step(0.01f);
    sep.zero_grad();
    fused.step(0.01f, clip_scale(norm, max_norm), true);
    for (auto [p, q] : {std::pair{&a1, &a2}, std::pair{&b1, &b2}}) {
      ASSERT_EQ(std::memcmp(p->value.raw(), q->value.raw(), p->value.nbytes()), 0) << p->name << " step " << k;
      for (int64_t i = 0; i < q->grad.numel(); ++i) ASSERT_EQ(q->grad.f32()[i], 0.f) << q->name;
    }
    for (size_t j = 0; j < 2; ++j) {
      EXPECT_EQ(std::memcmp(sep.exp_avg()[j].raw(), fused.exp_avg()[j].raw(), sep.exp_avg()[j].nbytes()), 0);
      EXPECT_EQ(std::memcmp(sep.exp_avg_sq()[j].raw(), fused.exp_avg_sq()[j].raw(), sep.exp_avg_sq()[j].nbytes()), 0);
    }
  }
  EXPECT_EQ(clip_scale(0.5f, 1.f), 1.f);
  EXPECT_EQ(clip_scale(5.f, 0.f), 1.f);
}
