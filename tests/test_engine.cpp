// Core engine behaviour: tensors, the arena's planned memory (no heap
// allocation in steady-state training steps), determinism, and autograd
// bookkeeping (gradient accumulation, frozen parameters, bad calls).
#include <gtest/gtest.h>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/models/vit.h"
#include "mmkit/ops/gemm.h"
#include "test_util.h"

using namespace mmkit;

TEST(Tensor, ShapesAndViews) {
  Tensor t = Tensor::zeros(Shape{2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  Tensor r = t.reshape(Shape{6, 4});
  r.f32()[5] = 7.f;
  EXPECT_EQ(t.f32()[5], 7.f);  // views share data
  EXPECT_THROW(t.reshape(Shape{5, 5}), Error);
  EXPECT_THROW(Tensor::empty(Shape{2, 3}, DType::i32).f32(), Error);
  EXPECT_EQ(Shape({2, 3}).str(), "[2, 3]");
}

TEST(Arena, FoldsIntoOneBlockAndStopsAllocating) {
  Arena a(1024);
  for (int i = 0; i < 10; ++i) a.alloc(1000);
  EXPECT_GT(a.chunk_count(), 1);
  a.reset();
  EXPECT_EQ(a.chunk_count(), 1);
  size_t allocs = a.heap_allocations();
  for (int step = 0; step < 3; ++step) {
    for (int i = 0; i < 10; ++i) a.alloc(1000);
    a.reset();
  }
  EXPECT_EQ(a.heap_allocations(), allocs);
}

TEST(Arena, SteadyStateTrainingStepsDoNotAllocate) {
  VitConfig cfg;
  cfg.image_size = 16;
  cfg.patch_size = 4;
  cfg.dim = 32;
  cfg.depth = 2;
  cfg.heads = 2;
  cfg.mlp_dim = 64;
  Vit vit;
  vit.init(cfg, 0);
  AdamW opt(vit.parameters(), AdamWConfig{});
  Arena arena;
  Graph g(arena);
  Tensor x = Tensor::zeros(Shape{8, 1, 16, 16});
  Tensor y = Tensor::zeros(Shape{8}, DType::i32);
  size_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    g.reset();
    opt.zero_grad();
    Var loss = ag::cross_entropy(g, vit_forward(g, vit, g.constant(x)), y, 0.1f);
    g.backward(loss);
    opt.step(1e-3f);
    if (step == 1) after_first = arena.heap_allocations();
  }
  EXPECT_EQ(arena.heap_allocations(), after_first);
  EXPECT_EQ(arena.chunk_count(), 1);
}

TEST(Autograd, GradientsAccumulateAcrossUses) {
  Arena arena;
  Graph g(arena);
  Var x = g.leaf(Tensor::from_vector(Shape{3}, {1.f, 2.f, 3.f}));
  Var y = ag::mul(g, x, x);  // d/dx sum(x*x) = 2x, through both operands
  g.backward(y, Tensor::from_vector(Shape{3}, {1.f, 1.f, 1.f}));
  EXPECT_EQ(g.grad(x).to_vector(), (std::vector<float>{2.f, 4.f, 6.f}));
}

TEST(Autograd, FrozenParametersGetNoGradientAndNoTapeWithoutGrad) {
  Parameter w;
  w.init("w", Shape{2, 2}, true);
  w.value.fill(1.f);
  w.trainable = false;
  Arena arena;
  Graph g(arena);
  Var x = g.constant(Tensor::from_vector(Shape{1, 2}, {1.f, 2.f}));
  Var y = ag::linear(g, x, g.param(w), Var{});
  EXPECT_FALSE(g.requires_grad(y));
  EXPECT_EQ(g.node_count(), 0u);
  EXPECT_THROW(g.backward(y), Error);  // not a scalar
}

TEST(Autograd, DropoutIsSeededAndInvertedScaled) {
  Arena arena;
  Graph g(arena);
  g.training = true;
  g.seed = 3;
  Tensor ones = Tensor::zeros(Shape{10000});
  ones.fill(1.f);
  Var a = ag::dropout(g, g.constant(ones), 0.25f);
  std::vector<float> va = g.value(a).to_vector();
  double mean = 0;
  int zeros = 0;
  for (float v : va) {
    mean += v;
    zeros += v == 0.f;
    EXPECT_TRUE(v == 0.f || std::fabs(v - 1.f / 0.75f) < 1e-6f);
  }
  EXPECT_NEAR(mean / va.size(), 1.0, 0.03);
  EXPECT_NEAR(zeros / 10000.0, 0.25, 0.02);
  g.reset();
  g.seed = 3;
  g.training = true;
  Var b = ag::dropout(g, g.constant(ones), 0.25f);
  EXPECT_EQ(g.value(b).to_vector(), va);  // same seed, same mask
  g.training = false;
  Var c = ag::dropout(g, g.constant(ones), 0.25f);
  EXPECT_EQ(g.value(c).to_vector(), ones.to_vector());  // identity at inference
}

TEST(Gemm, BackendMatchesReferenceForAllTransposes) {
  Rng r(1);
  const int64_t M = 37, N = 29, K = 53;
  std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
  for (auto& v : A) v = r.normal();
  for (auto& v : B) v = r.normal();
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      for (int64_t i = 0; i < M * N; ++i) C[i] = R[i] = float(i % 7);
      int64_t lda = ta ? M : K, ldb = tb ? K : N;
      ops::gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, C.data(), N);
      ops::gemm_reference(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, R.data(), N);
      Tensor c = Tensor::from_vector(Shape{M * N}, C), ref = Tensor::from_vector(Shape{M * N}, R);
      EXPECT_TRUE(test::close(std::string("gemm ") + ops::gemm_backend_name(), c, ref, 1e-4f, 1e-5f));
    }
}

TEST(Threads, ResultsDoNotDependOnThreadCount) {
  VitConfig cfg;
  cfg.image_size = 16;
  cfg.dim = 32;
  cfg.depth = 1;
  cfg.heads = 2;
  cfg.mlp_dim = 64;
  Vit vit;
  vit.init(cfg, 5);
  Rng r(2);
  Tensor x = Tensor::empty(Shape{16, 1, 16, 16});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = r.normal();
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Arena arena;
    Graph g(arena);
    for (Parameter* p : vit.parameters()) p->alloc_grad(), p->grad.zero();
    Tensor y = Tensor::zeros(Shape{16}, DType::i32);
    g.backward(ag::cross_entropy(g, vit_forward(g, vit, g.constant(x)), y, 0.f));
    grads.push_back(vit.parameters()[2]->grad.to_vector());  // cls_token: a reduction over the batch
  }
  set_num_threads(0);
  EXPECT_EQ(grads[0], grads[1]);
}
