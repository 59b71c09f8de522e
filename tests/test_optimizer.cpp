// AdamW, gradient clipping and the warmup + cosine schedule against
// torch.optim.AdamW (tests/fixtures/adamw.safetensors,
// tools/fixtures/gen_optim_fixture.py): three steps, parameters compared
// after each within 1e-6 absolute + 1e-5 relative.
#include <gtest/gtest.h>

#include <cstring>

#include "mmkit/autograd/optimizer.h"
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
