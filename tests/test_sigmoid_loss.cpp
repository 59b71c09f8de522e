// SigLIP's sigmoid loss (ag::sigmoid_loss, ops/sigmoid_loss.h) against
// PyTorch running open_clip's SigLipLoss (tools/fixtures/gen_sigmoid_loss_fixture.py):
// the loss and the gradients of both feature matrices, the log logit scale and
// the bias within 1e-4 relative, in one process and per rank of a two-process
// job (open_clip exchanges text features between neighbours; mmkit all-gathers
// them); the ranks' losses average to the one-process loss of the whole batch.
// Finite differences: tests/test_gradcheck.cpp (GradCheck.SigmoidLoss).
#include <gtest/gtest.h>

#include <fstream>

#include "mmkit/autograd/functions.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"
#include "test_util.h"

using namespace mmkit;

namespace {

const std::string kFixture = std::string(MMKIT_SOURCE_DIR) + "/tests/fixtures/sigmoid_loss.safetensors";
constexpr float kRel = 1e-4f;

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

Tensor scalar(float v) {
  Tensor t = Tensor::empty(Shape{1});
  t.f32()[0] = v;
  return t;
}

}  // namespace

TEST(SigmoidLoss, MatchesOpenClipSigLipLoss) {
  io::SafetensorsFile f = io::SafetensorsFile::open(kFixture);
  const int cases = std::stoi(f.metadata().at("cases"));
  ASSERT_EQ(cases, 3);
  for (int k = 0; k < cases; ++k) {
    const std::string p = "case" + std::to_string(k) + ".";
    SCOPED_TRACE(p);
    Arena arena;
    Graph g(arena);
    Var img = g.leaf(io::read_tensor_f32(f, p + "img")), txt = g.leaf(io::read_tensor_f32(f, p + "txt"));
    Var t = g.leaf(io::read_tensor_f32(f, p + "t")), bias = g.leaf(io::read_tensor_f32(f, p + "bias"));
    const int64_t B = g.shape(img)[0];
    Tensor logits = Tensor::empty(Shape{B, B});
    Var loss = ag::sigmoid_loss(g, img, txt, t, bias, &logits);
    g.backward(loss);
    EXPECT_TRUE(test::close(p + "loss", g.value(loss), io::read_tensor_f32(f, p + "loss"), 0, kRel));
    EXPECT_TRUE(test::close_scaled(p + "dimg", g.grad(img), io::read_tensor_f32(f, p + "dimg"), kRel));
    EXPECT_TRUE(test::close_scaled(p + "dtxt", g.grad(txt), io::read_tensor_f32(f, p + "dtxt"), kRel));
    EXPECT_TRUE(test::close(p + "dt", g.grad(t), io::read_tensor_f32(f, p + "dt"), 0, kRel));
    EXPECT_TRUE(test::close(p + "dbias", g.grad(bias), io::read_tensor_f32(f, p + "dbias"), 0, kRel));
    // The logits carry the bias: exp(t) cos + bias lies in [bias - exp(t), bias + exp(t)].
    const float s = std::exp(g.data(t)[0]), b0 = g.data(bias)[0];
    for (int64_t i = 0; i < B * B; ++i) {
      ASSERT_GE(logits.f32()[i], b0 - s - 1e-4f);
      ASSERT_LE(logits.f32()[i], b0 + s + 1e-4f);
    }
  }
}

// The fixture's two ranks as one process with the whole batch: the loss is
// the mean of the ranks' losses, the scale's and bias's gradients the mean of
// theirs, and each rank's feature gradients (open_clip's, after the exchange's
// backward) are twice the whole-batch gradients of its rows — the mean over
// ranks is what the training loop's gradient all-reduce forms.
TEST(SigmoidLoss, MeanOfRankLossesIsTheWholeBatchLoss) {
  io::SafetensorsFile f = io::SafetensorsFile::open(kFixture);
  const int64_t B = std::stoll(f.metadata().at("B")), E = std::stoll(f.metadata().at("E"));
  ASSERT_EQ(f.metadata().at("world"), "2");
  const Tensor img = test::stack_ranks(f, "img", 2), txt = test::stack_ranks(f, "txt", 2);
  const float want_loss = test::mean_over_ranks(f, "loss", 2), want_dt = test::mean_over_ranks(f, "dt", 2),
              want_db = test::mean_over_ranks(f, "dbias", 2);
  Arena arena;
  Graph g(arena);
  Var vi = g.leaf(img), vt = g.leaf(txt), vs = g.leaf(io::read_tensor_f32(f, "dist.t")),
      vb = g.leaf(io::read_tensor_f32(f, "dist.bias"));
  Var loss = ag::sigmoid_loss(g, vi, vt, vs, vb);
  g.backward(loss);
  EXPECT_TRUE(test::close("loss", g.value(loss), scalar(want_loss), 0, kRel));
  EXPECT_TRUE(test::close("dt", g.grad(vs), scalar(want_dt), 0, kRel));
  EXPECT_TRUE(test::close("dbias", g.grad(vb), scalar(want_db), 0, kRel));
  for (int r = 0; r < 2; ++r)
    for (const char* which : {"dimg", "dtxt"}) {
      Tensor half = io::read_tensor_f32(f, "rank" + std::to_string(r) + "." + which);
      for (int64_t k = 0; k < B * E; ++k) half.f32()[k] /= 2;
      const Tensor got = test::rank_rows(g.grad(std::string(which) == "dimg" ? vi : vt), r, B);
      EXPECT_TRUE(test::close_scaled(std::string(which) + " of rank " + std::to_string(r) + "'s rows", got, half, kRel));
    }
}

// Each rank of `mpirun -np 2` runs ag::sigmoid_loss_gathered on its rows and
// matches open_clip's per-rank loss and gradients (tests/mpi/dist_clip_loss_check).
TEST(SigmoidLoss, EachRankMatchesOpenClipUnderMpirun) {
  if (!dist::built_with_mpi()) GTEST_SKIP() << "mmkit was built without MPI (libopenmpi-dev)";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found (openmpi-bin)";
  const std::string dir = test::make_temp_dir("sigmoid_loss_mpi");
  const std::string cmd = test::mpirun_prefix(2, "", 120) + std::string(MMKIT_BINARY_DIR) + "/dist_clip_loss_check " +
                          kFixture + " sigmoid > " + dir + "/out.txt 2>&1";
  const int st = std::system(cmd.c_str());
  const std::string out = slurp(dir + "/out.txt");
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  for (const char* r : {"rank 0 loss", "rank 0 dtxt", "rank 0 dbias", "rank 1 loss", "rank 1 dimg", "rank 1 dbias"})
    EXPECT_NE(out.find(r), std::string::npos) << r << "\n" << out;
}

TEST(SigmoidLoss, RefusesMismatchedShapes) {
  Arena arena;
  Graph g(arena);
  Var img = g.leaf(Tensor::zeros(Shape{3, 4})), txt = g.leaf(Tensor::zeros(Shape{2, 4}));
  Var t = g.leaf(scalar(1.f)), b = g.leaf(scalar(-1.f));
  try {
    ag::sigmoid_loss(g, img, txt, t, b);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[3, 4] and [2, 4]"), std::string::npos) << e.what();
  }
}
