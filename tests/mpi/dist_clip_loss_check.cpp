// Run under `mpirun -np 2` by tests/test_dist_clip_loss.cpp: each rank computes
// ag::clip_contrastive_loss_gathered on its rows of the fixture made by
// tools/fixtures/gen_dist_clip_loss_fixture.py (open_clip's ClipLoss with
// local_loss and gather_with_grad, torch.distributed gloo) and compares its
// loss and the gradients of its features and of the temperature.
// With a second argument `sigmoid` (tests/test_sigmoid_loss.cpp): the same for
// ag::sigmoid_loss_gathered against tools/fixtures/gen_sigmoid_loss_fixture.py
// (open_clip's SigLipLoss with its neighbour exchange of text features), and
// the gradient of the bias too.
// Exit 0: all within 1e-5 relative; 1: a mismatch (the worst element printed);
// 2: the setup is wrong (world size, fixture).
#include <cmath>
#include <cstdio>
#include <string>

#include "mmkit/autograd/functions.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"

using namespace mmkit;

namespace {

// |got - want| <= 1e-5 * max |want| over the tensor; prints the worst element.
bool close(int rank, const char* what, const float* got, const Tensor& want) {
  double scale = 0, worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, double(std::fabs(want.f32()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::fabs(double(got[i]) - want.f32()[i]);
    if (d > worst) worst = d, at = i;
  }
  const bool ok = worst <= 1e-5 * scale;
  std::printf("rank %d %-5s worst |diff| %.3g at [%lld] (%.8g vs %.8g), scale %.3g: %s\n", rank, what, worst,
              (long long)at, double(got[at]), double(want.f32()[at]), scale, ok ? "ok" : "MISMATCH");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const bool sigmoid = argc == 3 && std::string(argv[2]) == "sigmoid";
  if (argc != 2 && !sigmoid) {
    std::fprintf(stderr, "usage: mpirun -np 2 dist_clip_loss_check FIXTURE [sigmoid]\n");
    return 2;
  }
  try {
    dist::Communicator& comm = dist::world();
    io::SafetensorsFile f = io::SafetensorsFile::open(argv[1]);
    if (comm.size() != std::stoi(f.metadata().at("world"))) {
      std::fprintf(stderr, "run with mpirun -np %s (got %d processes)\n", f.metadata().at("world").c_str(), comm.size());
      return 2;
    }
    const std::string p = "rank" + std::to_string(comm.rank()) + ".";
    Tensor img = io::read_tensor_f32(f, p + "img"), txt = io::read_tensor_f32(f, p + "txt");
    Tensor t = io::read_tensor_f32(f, sigmoid ? "dist.t" : "t");
    Arena arena;
    Graph g(arena);
    Var vi = g.leaf(img), vt = g.leaf(txt), vs = g.leaf(t), vb;
    Var loss;
    if (sigmoid) {
      vb = g.leaf(io::read_tensor_f32(f, "dist.bias"));
      loss = ag::sigmoid_loss_gathered(g, vi, vt, vs, vb, comm);
    } else {
      loss = ag::clip_contrastive_loss_gathered(g, vi, vt, vs, comm);
    }
    g.backward(loss);
    bool ok = close(comm.rank(), "loss", g.data(loss), io::read_tensor_f32(f, p + "loss"));
    ok &= close(comm.rank(), "dimg", g.grad(vi).f32(), io::read_tensor_f32(f, p + "dimg"));
    ok &= close(comm.rank(), "dtxt", g.grad(vt).f32(), io::read_tensor_f32(f, p + "dtxt"));
    ok &= close(comm.rank(), "dt", g.grad(vs).f32(), io::read_tensor_f32(f, p + "dt"));
    if (sigmoid) ok &= close(comm.rank(), "dbias", g.grad(vb).f32(), io::read_tensor_f32(f, p + "dbias"));
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_clip_loss_check: %s\n", e.what());
    return 2;
  }
}
