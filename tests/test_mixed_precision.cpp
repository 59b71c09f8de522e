// bf16 mixed-precision training (issue #22, acceptance 3): the bf16 GEMM
// against its plain-loop oracle on every layout, Linear and the patch
// embedding forward and backward against PyTorch on bf16-rounded inputs
// (tools/fixtures/gen_bf16_gemm_fixture.py), weights converted once per step,
// a short bf16 ViT run whose losses track the fp32 run's, and --precision
// through the command line: stored in the checkpoint, restored by --resume,
// checkpoints still f32.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/graph.h"
#include "mmkit/core/rng.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/ops/gemm_bf16.h"
#include "mmkit/train/vit_trainer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

std::vector<uint16_t> random_bf16(int64_t n, Rng& rng) {
  std::vector<float> f(static_cast<size_t>(n));
  for (auto& v : f) v = rng.normal();
  std::vector<uint16_t> h(static_cast<size_t>(n));
  ops::f32_to_bf16(f.data(), h.data(), n);
  return h;
}

Tensor fixture_tensor(const io::SafetensorsFile& f, const std::string& name) { return io::read_tensor_f32(f, name); }

// The step losses of OUT/losses.tsv.
std::vector<double> step_losses(const std::string& dir) {
  std::ifstream f(dir + "/losses.tsv");
  std::vector<double> l;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream s(line);
    long long step;
    double loss;
    s >> step >> loss;
    l.push_back(loss);
  }
  return l;
}

}  // namespace

TEST(GemmBf16, MatchesReferenceOnEveryLayout) {
  Rng rng(5);
  const int64_t M = 19, N = 23, K = 37;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f}) {
        // Leading dimensions wider than the rows, as the linear_rows slices and packed q/k/v read them.
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        auto A = random_bf16((ta ? K : M) * lda, rng), B = random_bf16((tb ? N : K) * ldb, rng);
        Tensor c0 = Tensor::empty(Shape{M, ldc});
        for (int64_t i = 0; i < c0.numel(); ++i) c0.f32()[i] = rng.normal();
        Tensor got = c0.clone(), want = c0.clone();
        ops::gemm_bf16(ta, tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, beta, got.f32(), ldc);
        ops::gemm_bf16_reference(ta, tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, beta, want.f32(), ldc);
        // Products of bf16 values are exact in f32; what differs is the f32 summation order of 37 terms.
        EXPECT_TRUE(test::close("gemm_bf16 ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                                    " beta=" + std::to_string(beta),
                                got, want, 2e-5f, 2e-6f));
      }
  std::printf("bf16 GEMM: %s\n", ops::gemm_bf16_backend_name().c_str());
}

TEST(GemmBf16, RoundsToNearestEven) {
  const float in[] = {1.f, 1.00390625f /* halfway, even below */, 1.01171875f /* halfway, even above */,
                      -2.5f, 3.0e38f, INFINITY, NAN};
  uint16_t h[7];
  ops::f32_to_bf16(in, h, 7);
  EXPECT_EQ(h[0], 0x3f80);
  EXPECT_EQ(h[1], 0x3f80);
  EXPECT_EQ(h[2], 0x3f82);
  EXPECT_EQ(h[3], 0xc020);
  EXPECT_EQ(h[4], 0x7f62);
  EXPECT_EQ(h[5], 0x7f80);
  EXPECT_TRUE((h[6] & 0x7f80) == 0x7f80 && (h[6] & 0x7f) != 0) << "NaN must stay NaN, got " << h[6];
}

// Linear and the patch embedding in a bf16 graph against PyTorch's products of the rounded operands.
// The fixture's inputs are unrounded: an f32 GEMM misses the references by ~1e-2 relative, far
// outside the tolerance (checked below, so the test cannot pass without the rounding).
TEST(MixedPrecision, LinearAndPatchEmbedMatchPyTorch) {
  io::SafetensorsFile f = io::SafetensorsFile::open(test::fixture("bf16_gemm.safetensors"));
  for (Precision prec : {Precision::bf16, Precision::fp32}) {
    Arena arena;
    Graph g(arena), g2(arena);  // one backward per graph
    g.precision = g2.precision = prec;
    Parameter w, b, pw, pb;
    w.value = fixture_tensor(f, "lin.w");
    b.value = fixture_tensor(f, "lin.b");
    pw.value = fixture_tensor(f, "pe.w");
    pb.value = fixture_tensor(f, "pe.b");
    for (Parameter* p : {&w, &b, &pw, &pb}) {
      p->alloc_grad();
      p->grad.zero();
    }
    Var x = g.leaf(fixture_tensor(f, "lin.x"));
    Var y = ag::linear(g, x, g.param(w), g.param(b));
    g.backward(y, fixture_tensor(f, "lin.dy"));
    Var img = g2.leaf(fixture_tensor(f, "pe.img"));
    Var py = ag::patch_embed(g2, img, g2.param(pw), g2.param(pb), 4);
    g2.backward(py, fixture_tensor(f, "pe.dy"));
    const float tol = 2e-5f;  // f32 sums of <= 48 exact products; values of order 1-10
    auto check = [&](const std::string& what, const Tensor& got, const std::string& ref, bool rounded) {
      testing::AssertionResult r = test::close(what, got, fixture_tensor(f, ref), tol, tol);
      if (prec == Precision::bf16 || !rounded) EXPECT_TRUE(r) << precision_name(prec);
      else EXPECT_FALSE(r) << what << ": f32 products match the bf16 references; the check could not fail";
    };
    check("linear y", g.value(y), "lin.y", true);
    check("linear dx", g.grad(x), "lin.dx", true);
    check("linear dW", w.grad, "lin.dw", true);
    check("linear db", b.grad, "lin.db", false);  // f32 in both: the unrounded dy's column sums
    check("patch_embed y", g2.value(py), "pe.y", true);
    check("patch_embed dimg", g2.grad(img), "pe.dimg", true);
    check("patch_embed dW", pw.grad, "pe.dw", true);
    check("patch_embed db", pb.grad, "pe.db", false);
  }
}

// A parameter read by two ops, through two Vars, is rounded once per step; reset() starts over.
TEST(MixedPrecision, WeightsConvertOncePerStep) {
  Arena arena;
  Graph g(arena);
  g.precision = Precision::bf16;
  Parameter w;
  w.value = Tensor::empty(Shape{8, 8});
  Rng rng(3);
  for (int64_t i = 0; i < w.value.numel(); ++i) w.value.f32()[i] = rng.normal();
  Tensor x0 = Tensor::empty(Shape{4, 8});
  for (int64_t i = 0; i < x0.numel(); ++i) x0.f32()[i] = rng.normal();
  for (int step = 0; step < 2; ++step) {
    g.reset();
    Var x = g.leaf(x0);
    Var h = ag::linear(g, x, g.param(w), Var{});
    Var y = ag::linear(g, h, g.param(w), Var{});
    g.backward(y, Tensor::zeros(Shape{4, 8}));
    // w once, x once, h once: the backward reuses all three.
    EXPECT_EQ(g.bf16_conversions(), 3) << "step " << step;
  }
}

TEST(MixedPrecision, PrecisionNames) {
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  EXPECT_EQ(parse_precision("fp32"), Precision::fp32);
  EXPECT_EQ(test::error_of([] { parse_precision("fp16"); }), "unknown precision \"fp16\": expected fp32 or bf16");
}

// A short ViT run (one epoch, 20 steps) in fp32 and in bf16 from the same seed: the bf16 losses
// follow the fp32 ones step by step within a few percent (bf16 keeps 8 bits of mantissa; the
// updates are f32), and they are not the same numbers (the flag reached the loop).
TEST(MixedPrecision, Bf16TrainingTracksFp32) {
  REQUIRE_FMNIST();
  std::vector<double> losses[2];
  double acc[2];
  for (int k = 0; k < 2; ++k) {
    train::VitTrainOptions o;
    o.out_dir = test::make_temp_dir(k ? "bf16" : "fp32");
    o.model.dim = 32;
    o.model.depth = 2;
    o.model.heads = 2;
    o.model.mlp_dim = 64;
    o.model.patch_size = 7;
    o.epochs = 1;
    o.batch = 64;
    o.limit_train = 1280;
    o.limit_test = 500;
    o.threads = 2;
    o.precision = k ? "bf16" : "fp32";
    auto h = train::train_vit(o);
    losses[k] = step_losses(o.out_dir);
    acc[k] = h.back().test_acc;
  }
  ASSERT_EQ(losses[0].size(), 20u);
  ASSERT_EQ(losses[1].size(), 20u);
  double worst = 0, mean0 = 0, mean1 = 0;
  size_t worst_step = 0;
  bool differ = false;
  for (size_t s = 0; s < 20; ++s) {
    const double rel = std::fabs(losses[1][s] - losses[0][s]) / losses[0][s];
    if (rel > worst) worst = rel, worst_step = s;
    differ |= losses[1][s] != losses[0][s];
    mean0 += losses[0][s] / 20;
    mean1 += losses[1][s] / 20;
  }
  std::printf("fp32 vs bf16: worst step loss difference %.4f%% (step %zu: %.5f vs %.5f), mean loss %.5f vs %.5f, "
              "test accuracy %.3f vs %.3f\n",
              100 * worst, worst_step, losses[0][worst_step], losses[1][worst_step], mean0, mean1, acc[0], acc[1]);
  EXPECT_TRUE(differ) << "bf16 run gave the fp32 run's losses exactly: --precision did not reach the GEMMs";
  EXPECT_LT(worst, 0.02) << "step " << worst_step << ": " << losses[1][worst_step] << " vs fp32 "
                         << losses[0][worst_step];
  EXPECT_NEAR(mean1, mean0, 0.01 * mean0);
  EXPECT_NEAR(acc[1], acc[0], 0.03);
}

// Through the command line: --precision bf16 is stored in the checkpoint's options, a resume
// without the flag continues in bf16 (the resumed model equals the uninterrupted run's, byte for
// byte), and the files stay f32.
TEST(MixedPrecision, CliStoresPrecisionAndResumes) {
  REQUIRE_FMNIST();
  const std::string dir = test::make_temp_dir("bf16cli");
  const std::string args = "train vit --data fashion-mnist --limit-train 256 --limit-test 64 --epochs 1 --batch 32 "
                           "--dim 16 --depth 1 --heads 2 --mlp-dim 32 --patch 7 --threads 2 --seed 4 --precision bf16";
  test::RunResult r = test::run_mmkit(args + " --out " + dir + "/full", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_mmkit(args + " --out " + dir + "/part --max-steps 3", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  {
    io::SafetensorsFile ck = io::SafetensorsFile::open(dir + "/part/checkpoint.safetensors");
    auto st = nlohmann::json::parse(ck.metadata().at("train_state"));
    EXPECT_EQ(st["options"]["precision"], "bf16");
    for (const auto& t : ck.tensors()) EXPECT_EQ(t.dtype, DType::f32) << t.name;
  }
  // Resumed without --precision: the stored bf16 is restored (as every stored option is).
  r = test::run_mmkit("train vit --data fashion-mnist --out " + dir + "/part --resume", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  io::SafetensorsFile a = io::SafetensorsFile::open(dir + "/full/model.safetensors");
  io::SafetensorsFile b = io::SafetensorsFile::open(dir + "/part/model.safetensors");
  for (const auto& t : a.tensors()) {
    EXPECT_EQ(t.dtype, DType::f32) << t.name;
    EXPECT_TRUE(test::close(t.name, io::read_tensor_f32(b, t.name), io::read_tensor_f32(a, t.name), 0, 0));
  }
  // A resume that asks for another precision is refused unless --override (as for every stored option).
  r = test::run_mmkit("train vit --data fashion-mnist --out " + dir + "/part --resume --epochs 2 --precision fp32", dir);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--precision"), std::string::npos) << r.err;
  r = test::run_mmkit("train vit --data fashion-mnist --out " + dir + "/x --precision fp16", dir);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--precision"), std::string::npos) << r.err;
}
