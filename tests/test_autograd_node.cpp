// The tape's node recording (Graph::record, typed op parameters, the input
// list) and the internal-invariant assertion MMKIT_ASSERT, as opposed to the
// user-facing MMKIT_CHECK.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/error.h"
#include "test_util.h"

using namespace mmkit;

// Counts heap allocations of the whole binary: the tape must not allocate once
// a step of the same shapes has run. (GCC cannot see that these replace the global operators and
// warns that `new` is paired with free() wherever it inlines a delete.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<size_t> g_news{0};
void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

static std::string internal_error_of(void (*f)()) {
  try {
    f();
  } catch (const Error&) {
    ADD_FAILURE() << "an internal invariant threw the user-facing mmkit::Error";
  } catch (const InternalError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected mmkit::InternalError";
  return "";
}

TEST(Assert, NamesTheExpressionAndFileLine) {
  const int line = __LINE__ + 1;
  std::string msg = internal_error_of([] { int two = 2; MMKIT_ASSERT(two + 2 == 5); });
  EXPECT_NE(msg.find("MMKIT_ASSERT(two + 2 == 5) failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test_autograd_node.cpp:" + std::to_string(line)), std::string::npos) << msg;
  MMKIT_ASSERT(1 + 1 == 2);  // a true invariant costs nothing visible
}

TEST(Assert, UserErrorsKeepTheirOwnTypeAndMessage) {
  std::string msg = test::error_of([] { MMKIT_CHECK(false, "tensor ", "w", ": got [2], expected [3]"); });
  EXPECT_EQ(msg, "tensor w: got [2], expected [3]");
  // A bug must not be mistaken for (and handled as) a bad input.
  EXPECT_FALSE((std::is_base_of_v<Error, InternalError>));
}

namespace {
struct TwoInts {
  int64_t a, b;
};
struct OneFloat {
  float s;
};
void no_backward(Graph&, const Node&) {}
}  // namespace

TEST(Node, ParamsRoundTripAndAreTypeChecked) {
  Node n;
  n.set_params(TwoInts{3, -7});
  EXPECT_EQ(n.params<TwoInts>().a, 3);
  EXPECT_EQ(n.params<TwoInts>().b, -7);
  Node copy = n;  // the tape copies nodes when its vector grows
  EXPECT_EQ(copy.params<TwoInts>().b, -7);
  EXPECT_THROW(n.params<OneFloat>(), InternalError);
  EXPECT_THROW(Node().params<NoParams>(), InternalError);  // nothing recorded
}

TEST(Graph, RecordKeepsInputsInOrderAndSkipsNodesWithoutGradients) {
  Arena arena;
  Graph g(arena);
  Var c = g.constant(Tensor::zeros(Shape{2}));
  Var x = g.leaf(Tensor::zeros(Shape{2}));
  Var r = g.record(g.alloc(Shape{2}), no_backward, {c, c}, OneFloat{1.f});
  EXPECT_FALSE(g.requires_grad(r));
  EXPECT_EQ(g.node_count(), 0u);
  r = g.record(g.alloc(Shape{2}), no_backward, {c, Var{}, x}, OneFloat{0.5f}, {g.value(x)});
  EXPECT_TRUE(g.requires_grad(r));
  EXPECT_EQ(g.node_count(), 1u);
  g.grad_enabled = false;
  EXPECT_FALSE(g.requires_grad(g.record(g.alloc(Shape{2}), no_backward, {x})));
  EXPECT_EQ(g.node_count(), 1u);
}

TEST(Graph, NodeInputsOutOfRangeAssert) {
  // Reads the node back through a backward function: the only place nodes are visible.
  static int seen_inputs = -1;
  static std::string error;
  auto bw = [](Graph&, const Node& n) {
    seen_inputs = n.num_inputs();
    EXPECT_EQ(n.in(1), -1);  // an absent input keeps its position
    EXPECT_EQ(n.params<OneFloat>().s, 0.5f);
    try {
      n.in(3);
    } catch (const InternalError& e) {
      error = e.what();
    }
  };
  Arena arena;
  Graph g(arena);
  Var x = g.leaf(Tensor::zeros(Shape{1}));
  Var y = g.record(g.alloc(Shape{1}), bw, {x, Var{}, x}, OneFloat{0.5f});
  g.backward(y, Tensor::zeros(Shape{1}));
  EXPECT_EQ(seen_inputs, 3);
  EXPECT_NE(error.find("MMKIT_ASSERT(k >= 0 && k < num_in_)"), std::string::npos) << error;
}

TEST(Graph, ConcatOfSevenKeepsEveryInputsGradient) {
  Arena arena;
  Graph g(arena);
  std::vector<Var> xs;
  for (int k = 0; k < 7; ++k) xs.push_back(g.leaf(Tensor::zeros(Shape{2, k + 1})));
  Var y = ag::concat(g, xs, 1);  // [2, 28]
  Tensor seed = Tensor::empty(Shape{2, 28});
  for (int i = 0; i < 56; ++i) seed.f32()[i] = float(i);
  g.backward(y, seed);
  for (int k = 0, col = 0; k < 7; col += k + 1, ++k)
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j <= k; ++j)
        ASSERT_EQ(g.grad(xs[k]).f32()[r * (k + 1) + j], float(r * 28 + col + j)) << "input " << k;
}

TEST(Graph, SteadyStateStepsDoNotAllocate) {
  // Ops without GEMM (a BLAS library may keep its own caches): what is measured is the tape.
  Arena arena;
  Graph g(arena);
  Tensor xa = Tensor::zeros(Shape{4, 3, 8}), w = Tensor::zeros(Shape{8}), b = Tensor::zeros(Shape{8});
  w.fill(1.f);
  Tensor ids = Tensor::zeros(Shape{4}, DType::i32);
  std::vector<Var> parts(7);
  size_t news = 0;
  for (int step = 0; step < 3; ++step) {
    if (step == 2) news = g_news.load();
    g.reset();
    Var x = g.leaf(xa);
    Var h = ag::layernorm(g, x, g.leaf(w), g.leaf(b), 1e-5f);
    h = ag::add(g, ag::gelu(g, h), ag::scale(g, x, 0.5f));
    parts = {h, h, x, h, x, h, x};  // reuses the vector's storage
    h = ag::concat(g, parts, 2);    // [4, 3, 56]
    h = ag::transpose(g, ag::softmax(g, h), 1, 2);
    Var logits = ag::mean_tokens(g, ag::reshape(g, h, Shape{4, 56, 3}));
    g.backward(ag::cross_entropy(g, logits, ids, 0.1f));
  }
  EXPECT_EQ(g_news.load(), news);
}
