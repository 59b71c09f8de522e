// CLIP's contrastive loss over a data-parallel global batch against PyTorch:
// tests/mpi/dist_clip_loss_check (two MPI ranks) compares each rank's loss and
// the gradients of its features and of the temperature with open_clip's
// ClipLoss(local_loss=True, gather_with_grad=True) run by torch.distributed
// (tools/fixtures/gen_dist_clip_loss_fixture.py), within 1e-5 relative; and
// one process on the whole batch gives the mean of the ranks' losses.
#include <gtest/gtest.h>

#include <fstream>

#include "mmkit/autograd/functions.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"
#include "test_util.h"

using namespace mmkit;

namespace {

const std::string kFixture = std::string(MMKIT_SOURCE_DIR) + "/tests/fixtures/dist_clip_loss.safetensors";

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace

TEST(DistClipLoss, EachRankMatchesOpenClipsGatheredLoss) {
  if (!dist::built_with_mpi()) GTEST_SKIP() << "mmkit was built without MPI (libopenmpi-dev)";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found (openmpi-bin)";
  const std::string dir = test::make_temp_dir("dist_clip_loss");
  for (const char* btl : {"", "--mca btl tcp,self"}) {
    const std::string cmd = test::mpirun_prefix(2, btl, 120) + std::string(MMKIT_BINARY_DIR) + "/dist_clip_loss_check " + kFixture + " > " + dir +
                            "/out.txt 2>&1";
    const int st = std::system(cmd.c_str());
    const std::string out = slurp(dir + "/out.txt");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << btl << "\n" << out;
    // Both ranks checked all four quantities.
    for (const char* r : {"rank 0 loss", "rank 0 dimg", "rank 0 dtxt", "rank 0 dt", "rank 1 loss", "rank 1 dt"})
      EXPECT_NE(out.find(r), std::string::npos) << r << "\n" << out;
  }
}

// Without MPI: the ranks' losses average to the single-process loss of the
// whole batch, and the single-process gradients are the ranks' (summed
// feature gradients, temperature gradient) divided by the number of ranks.
TEST(DistClipLoss, MeanOfRankLossesIsTheWholeBatchLoss) {
  io::SafetensorsFile f = io::SafetensorsFile::open(kFixture);
  const int64_t B = std::stoll(f.metadata().at("B")), E = std::stoll(f.metadata().at("E"));
  const Tensor img = test::stack_ranks(f, "img", 2), txt = test::stack_ranks(f, "txt", 2);
  const float want_loss = test::mean_over_ranks(f, "loss", 2), want_dt = test::mean_over_ranks(f, "dt", 2);
  Arena arena;
  Graph g(arena);
  Var vi = g.leaf(img), vt = g.leaf(txt), vs = g.leaf(io::read_tensor_f32(f, "t"));
  Var loss = ag::clip_contrastive_loss(g, vi, vt, vs);
  g.backward(loss);
  EXPECT_NEAR(g.data(loss)[0], want_loss, 1e-5 * std::fabs(want_loss));
  EXPECT_NEAR(g.grad(vs).f32()[0], want_dt, 1e-5 * std::fabs(want_dt) + 1e-7);
  for (int r = 0; r < 2; ++r) {
    Tensor half = io::read_tensor_f32(f, "rank" + std::to_string(r) + ".dimg");
    for (int64_t k = 0; k < B * E; ++k) half.f32()[k] /= 2;
    const Tensor got = test::rank_rows(g.grad(vi), r, B);
    EXPECT_TRUE(test::close("dimg of rank " + std::to_string(r) + "'s rows", got, half, 1e-7, 1e-4));
  }
}
