#include "mmkit/autograd/functions.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "mmkit/dist/communicator.h"

#include "mmkit/ops/activation.h"
#include "mmkit/ops/attention.h"
#include "mmkit/ops/contrastive_loss.h"
#include "mmkit/ops/cross_entropy.h"
#include "mmkit/ops/distance_logits.h"
#include "mmkit/ops/dropout.h"
#include "mmkit/ops/elementwise.h"
#include "mmkit/ops/embedding.h"
#include "mmkit/ops/gather_rows.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/ops/gemm_bf16.h"
#include "mmkit/ops/grid_neighbours.h"
#include "mmkit/ops/layernorm.h"
#include "mmkit/ops/linear.h"
#include "mmkit/ops/masked_max.h"
#include "mmkit/ops/patch_embed.h"
#include "mmkit/ops/pooling.h"
#include "mmkit/ops/relation_pairs.h"
#include "mmkit/ops/shape_ops.h"
#include "mmkit/ops/sigmoid_loss.h"
#include "mmkit/ops/soft_cross_entropy.h"
#include "mmkit/ops/softmax.h"

namespace mmkit::ag {

namespace {

Shape with_last(const Shape& s, int64_t last) {
  Shape r = s;
  r[r.n - 1] = last;
  return r;
}

const float* val(Graph& g, int id) { return g.value(Var{id}).f32(); }

}  // namespace

// ---------------------------------------------------------------- linear
// Inputs {x, W, b}. The op uses rows [row0, row0 + out) of W and elements
// [bias0, bias0 + out) of b, which is how packed in_proj weights serve separate
// q/k/v projections.
struct LinearParams {
  int64_t in, out, row0, bias0;
  bool bf16;  // mixed precision (Graph::precision): bf16 operands, f32 accumulation
};

// dy [rows, cols] rounded to bf16: the backward's two GEMMs (dx, dW) read it, then it is dead, so
// one scratch buffer per thread serves every node (in the arena the copies of all nodes would add
// up: ~0.3 GB for a ViT-B/32 CLIP step at batch 32).
static const uint16_t* bf16_grad(const float* dy, int64_t rows, int64_t cols) {
  thread_local std::vector<uint16_t> h;
  if (h.size() < size_t(rows * cols)) h.resize(size_t(rows * cols));
  ops::f32_to_bf16(dy, h.data(), rows * cols);
  return h.data();
}

static void linear_bw(Graph& g, const Node& n) {
  const LinearParams& p = n.params<LinearParams>();
  const Tensor x = g.value(Var{n.in(0)});
  const int64_t N = x.numel() / p.in;
  float* dW = g.grad_ptr(n.in(1));
  float* db = g.grad_ptr(n.in(2));
  if (p.bf16) {
    float* dx = g.grad_ptr(n.in(0));
    const float* dy = g.grad_ptr(n.out);
    const uint16_t* dyh = dx || dW ? bf16_grad(dy, N, p.out) : nullptr;
    // The forward converted x and W: bf16_data returns those copies.
    ops::linear_backward_bf16(dy, dyh, dW ? g.bf16_data(Var{n.in(0)}) : nullptr,
                              dx ? g.bf16_data(Var{n.in(1)}) + p.row0 * p.in : nullptr, dx,
                              dW ? dW + p.row0 * p.in : nullptr, db ? db + p.bias0 : nullptr, N, p.in, p.out);
    return;
  }
  ops::linear_backward(g.grad_ptr(n.out), x.f32(), val(g, n.in(1)) + p.row0 * p.in, g.grad_ptr(n.in(0)),
                       dW ? dW + p.row0 * p.in : nullptr, db ? db + p.bias0 : nullptr, N, p.in, p.out);
}

// relu(linear): the ReLU is applied in place on the linear's output, and the backward masks the
// output's gradient in place (its buffer is not needed after this node), then runs linear's.
static void linear_relu_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  ops::relu_mask_inplace(y.f32(), g.grad_ptr(n.out), y.numel());
  linear_bw(g, n);
}

// linear_rows, and linear_relu when `relu` (one node either way).
static Var linear_impl(Graph& g, Var x, Var W, Var b, int64_t row0, int64_t rows, int64_t bias0, bool relu) {
  const Shape xs = g.shape(x);
  const Shape ws = g.shape(W);
  MMKIT_CHECK(ws.n == 2 && xs[-1] == ws[1], "linear: input ", xs.str(), " does not match weight ",
              ws.str());
  if (rows < 0) rows = ws[0] - row0;
  MMKIT_CHECK(row0 >= 0 && row0 + rows <= ws[0], "linear: rows [", row0, ", ", row0 + rows,
              ") outside weight ", ws.str());
  if (bias0 < 0) bias0 = row0;
  int64_t in = ws[1], out = rows, N = g.value(x).numel() / in;
  if (b.valid())
    MMKIT_CHECK(g.shape(b).numel() >= bias0 + rows, "linear: bias ", g.shape(b).str(), " for ",
                bias0 + rows, " outputs");
  Tensor y = g.alloc(with_last(xs, out));
  const float* bias = b.valid() ? g.data(b) + bias0 : nullptr;
  if (g.bf16())
    ops::linear_forward_bf16(g.bf16_data(x), g.bf16_data(W) + row0 * in, bias, y.f32(), N, in, out);
  else
    ops::linear_forward(g.data(x), g.data(W) + row0 * in, bias, y.f32(), N, in, out);
  if (relu) ops::relu_inplace(y.f32(), y.numel());
  return g.record(y, relu ? linear_relu_bw : linear_bw, {x, W, b}, LinearParams{in, out, row0, bias0, g.bf16()});
}

Var linear_rows(Graph& g, Var x, Var W, Var b, int64_t row0, int64_t rows, int64_t bias0) {
  return linear_impl(g, x, W, b, row0, rows, bias0, false);
}

Var linear(Graph& g, Var x, Var W, Var b) { return linear_impl(g, x, W, b, 0, -1, -1, false); }

Var linear_relu(Graph& g, Var x, Var W, Var b) { return linear_impl(g, x, W, b, 0, -1, -1, true); }

// ---------------------------------------------------------------- matmul
// Inputs {a [N, K], b [K, M]}.
struct MatmulParams {
  int64_t K, M;
};

static void matmul_bw(Graph& g, const Node& n) {
  const MatmulParams& p = n.params<MatmulParams>();
  const int64_t K = p.K, M = p.M, N = g.value(Var{n.in(0)}).numel() / K;
  const float* dy = g.grad_ptr(n.out);
  if (float* da = g.grad_ptr(n.in(0)))  // da += dy @ b^T
    ops::gemm(false, true, N, K, M, 1.f, dy, M, val(g, n.in(1)), M, 1.f, da, K);
  if (float* db = g.grad_ptr(n.in(1)))  // db += a^T @ dy
    ops::gemm(true, false, K, M, N, 1.f, val(g, n.in(0)), K, dy, M, 1.f, db, M);
}

Var matmul(Graph& g, Var a, Var b) {
  const Shape as = g.shape(a);
  const Shape bs = g.shape(b);
  MMKIT_CHECK(bs.n == 2 && as[-1] == bs[0], "matmul: ", as.str(), " @ ", bs.str(), " does not fit");
  const int64_t K = bs[0], M = bs[1], N = g.value(a).numel() / K;
  Tensor y = g.alloc(with_last(as, M));
  ops::gemm(false, false, N, M, K, 1.f, g.data(a), K, g.data(b), M, 0.f, y.f32(), M);
  return g.record(y, matmul_bw, {a, b}, MatmulParams{K, M});
}

// ---------------------------------------------------------------- add / mul / scale
static void add_bw(Graph& g, const Node& n) {
  const float* dy = g.grad_ptr(n.out);
  int64_t cnt = g.value(Var{n.out}).numel();
  for (int k = 0; k < 2; ++k)
    if (float* d = g.grad_ptr(n.in(k))) ops::axpy(1.f, dy, d, cnt);
}

Var add(Graph& g, Var a, Var b) {
  MMKIT_CHECK(g.shape(a) == g.shape(b), "add: shapes ", g.shape(a).str(), " and ",
              g.shape(b).str(), " differ");
  Tensor y = g.alloc(g.shape(a));
  ops::add_forward(g.data(a), g.data(b), y.f32(), y.numel());
  return g.record(y, add_bw, {a, b});
}

// Inputs {x, b}; inner = b's element count (x is [total / inner, inner]).
struct AddBroadcastParams {
  int64_t inner;
};

static void add_broadcast_bw(Graph& g, const Node& n) {
  const float* dy = g.grad_ptr(n.out);
  int64_t total = g.value(Var{n.out}).numel(), inner = n.params<AddBroadcastParams>().inner;
  if (float* dx = g.grad_ptr(n.in(0))) ops::axpy(1.f, dy, dx, total);
  if (float* db = g.grad_ptr(n.in(1))) ops::sum_outer_accumulate(dy, db, total / inner, inner);
}

Var add_broadcast(Graph& g, Var x, Var b) {
  const Shape xs = g.shape(x);
  const Shape bs = g.shape(b);
  // b must equal the trailing dims of x, ignoring leading 1s of b.
  int bn = bs.n;
  while (bn > 0 && bs[bs.n - bn] == 1 && bn > xs.n) --bn;
  int64_t inner = bs.numel();
  bool ok = inner > 0 && xs.numel() % inner == 0;
  for (int i = 1; ok && i <= bs.n && i <= xs.n; ++i)
    ok = bs[bs.n - i] == xs[xs.n - i] || (bs[bs.n - i] == 1 && i > xs.n);
  // Leading size-1 dims of b beyond the matched trailing ones are allowed.
  if (!ok) {
    ok = inner > 0 && xs.numel() % inner == 0;
    int64_t p = 1;
    for (int i = 1; ok && i <= xs.n; ++i) {
      p *= xs[xs.n - i];
      if (p == inner) break;
      if (p > inner) ok = false;
    }
  }
  MMKIT_CHECK(ok, "add_broadcast: cannot broadcast ", bs.str(), " onto ", xs.str());
  Tensor y = g.alloc(xs);
  ops::add_broadcast_forward(g.data(x), g.data(b), y.f32(), xs.numel() / inner, inner);
  return g.record(y, add_broadcast_bw, {x, b}, AddBroadcastParams{inner});
}

static void mul_bw(Graph& g, const Node& n) {
  ops::mul_backward(g.grad_ptr(n.out), val(g, n.in(0)), val(g, n.in(1)), g.grad_ptr(n.in(0)),
                    g.grad_ptr(n.in(1)), g.value(Var{n.out}).numel());
}

Var mul(Graph& g, Var a, Var b) {
  MMKIT_CHECK(g.shape(a) == g.shape(b), "mul: shapes ", g.shape(a).str(), " and ",
              g.shape(b).str(), " differ");
  Tensor y = g.alloc(g.shape(a));
  ops::mul_forward(g.data(a), g.data(b), y.f32(), y.numel());
  return g.record(y, mul_bw, {a, b});
}

struct ScaleParams {
  float s;
};

static void scale_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::axpy(n.params<ScaleParams>().s, g.grad_ptr(n.out), dx, g.value(Var{n.out}).numel());
}

Var scale(Graph& g, Var x, float s) {
  Tensor y = g.alloc(g.shape(x));
  ops::scale_forward(g.data(x), s, y.f32(), y.numel());
  return g.record(y, scale_bw, {x}, ScaleParams{s});
}

// ---------------------------------------------------------------- activations
template <void (*Fwd)(const float*, float*, int64_t),
          void (*Bwd)(const float*, const float*, float*, int64_t)>
static void unary_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in(0)))
    Bwd(g.grad_ptr(n.out), val(g, n.in(0)), dx, g.value(Var{n.out}).numel());
}

template <void (*Fwd)(const float*, float*, int64_t),
          void (*Bwd)(const float*, const float*, float*, int64_t)>
static Var unary(Graph& g, Var x) {
  Tensor y = g.alloc(g.shape(x));
  Fwd(g.data(x), y.f32(), y.numel());
  return g.record(y, unary_bw<Fwd, Bwd>, {x});
}

Var gelu(Graph& g, Var x) { return unary<ops::gelu_forward, ops::gelu_backward>(g, x); }
Var quick_gelu(Graph& g, Var x) {
  return unary<ops::quick_gelu_forward, ops::quick_gelu_backward>(g, x);
}

Var gelu_tanh(Graph& g, Var x) {
  return unary<ops::gelu_tanh_forward, ops::gelu_tanh_backward>(g, x);
}
Var relu(Graph& g, Var x) { return unary<ops::relu_forward, ops::relu_backward>(g, x); }

// ---------------------------------------------------------------- softmax family
static void softmax_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  int64_t cols = y.shape()[-1];
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::softmax_backward(g.grad_ptr(n.out), y.f32(), dx, y.numel() / cols, cols);
}

static void log_softmax_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  int64_t cols = y.shape()[-1];
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::log_softmax_backward(g.grad_ptr(n.out), y.f32(), dx, y.numel() / cols, cols);
}

static Var softmax_like(Graph& g, Var x, bool log) {
  Tensor y = g.alloc(g.shape(x));
  int64_t cols = g.shape(x)[-1];
  if (log)
    ops::log_softmax_forward(g.data(x), y.f32(), y.numel() / cols, cols);
  else
    ops::softmax_forward(g.data(x), y.f32(), y.numel() / cols, cols);
  return g.record(y, log ? log_softmax_bw : softmax_bw, {x});
}

Var softmax(Graph& g, Var x) { return softmax_like(g, x, false); }
Var log_softmax(Graph& g, Var x) { return softmax_like(g, x, true); }

// Inputs {logits}; saved {probs [N, K], targets I32 [N]}.
struct CrossEntropyParams {
  float label_smoothing;
};

static void cross_entropy_bw(Graph& g, const Node& n) {
  const Tensor& probs = n.saved[0];
  if (float* dl = g.grad_ptr(n.in(0)))
    ops::cross_entropy_backward(g.grad_ptr(n.out)[0], probs.f32(), n.saved[1].ptr<int32_t>(), dl,
                                probs.dim(0), probs.dim(1), n.params<CrossEntropyParams>().label_smoothing);
}

Var cross_entropy(Graph& g, Var logits, const Tensor& targets, float smoothing) {
  const Shape s = g.shape(logits);
  MMKIT_CHECK(s.n == 2, "cross_entropy: logits must be [N, K], got ", s.str());
  MMKIT_CHECK(targets.dtype() == DType::i32 && targets.numel() == s[0],
              "cross_entropy: targets must be I32 [", s[0], "], got ", dtype_name(targets.dtype()),
              " ", targets.shape().str());
  Tensor probs = g.alloc(s);
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::cross_entropy_forward(g.data(logits), targets.ptr<int32_t>(), probs.f32(),
                                             s[0], s[1], smoothing);
  return g.record(loss, cross_entropy_bw, {logits}, CrossEntropyParams{smoothing}, {probs, targets});
}

// ---------------------------------------------------------------- contrastive loss
// Inputs {img, txt, logit_scale}; saved {normalised rows [2, B, E], norms [2B + 1],
// dlogits [B, B]} as ops::ContrastiveSaved; t = logit_scale's value in the forward.
struct ContrastiveParams {
  int64_t B, E;
  float t;
};

static ops::ContrastiveSaved contrastive_saved(const Tensor& rows, const Tensor& norms, const Tensor& dlogits) {
  const int64_t B = rows.dim(1), E = rows.dim(2);
  return {rows.f32(), rows.f32() + B * E, norms.f32(), dlogits.f32(), nullptr};
}

static void contrastive_bw(Graph& g, const Node& n) {
  const ContrastiveParams& p = n.params<ContrastiveParams>();
  ops::contrastive_loss_backward(g.grad_ptr(n.out)[0], p.t, p.B, p.E,
                                 contrastive_saved(n.saved[0], n.saved[1], n.saved[2]), g.grad_ptr(n.in(0)),
                                 g.grad_ptr(n.in(1)), g.grad_ptr(n.in(2)));
}

Var clip_contrastive_loss(Graph& g, Var img, Var txt, Var logit_scale, Tensor* logits_out) {
  const Shape si = g.shape(img), st = g.shape(txt);
  MMKIT_CHECK(si.n == 2 && si == st, "clip_contrastive_loss: image and text embeddings must both be [B, E], got ",
              si.str(), " and ", st.str());
  MMKIT_CHECK(g.value(logit_scale).numel() == 1, "clip_contrastive_loss: logit_scale must hold one value, got ",
              g.shape(logit_scale).str());
  const int64_t B = si[0], E = si[1];
  const float t = g.data(logit_scale)[0];
  Tensor rows = g.alloc(Shape{2, B, E});
  Tensor norms = g.alloc(Shape{2 * B + 1});
  Tensor dlogits = g.alloc(Shape{B, B});
  ops::ContrastiveSaved s = contrastive_saved(rows, norms, dlogits);
  if (logits_out) {
    MMKIT_CHECK(logits_out->numel() == B * B && logits_out->dtype() == DType::f32,
                "clip_contrastive_loss: logits_out must be F32 [", B, ", ", B, "]");
    s.logits = logits_out->f32();
  }
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::contrastive_loss_forward(g.data(img), g.data(txt), t, B, E, s);
  return g.record(loss, contrastive_bw, {img, txt, logit_scale}, ContrastiveParams{B, E, t},
                  {rows, norms, dlogits});
}

// ---------------------------------------------------------------- contrastive loss, data-parallel
// Inputs {img, txt, logit_scale} (this rank's rows [B, E]); saved {gathered
// normalised rows [2, M, E], norms [2M + 1], dlogits [2, B, M]} as
// ops::ContrastiveRowsSaved. The backward sums the gathered rows' gradients
// over the ranks (each rank's loss depends on every rank's features) and
// keeps this rank's rows: the semantics of open_clip's gather_with_grad.
struct GatheredContrastiveParams {
  int64_t B, M, E, r0;
  float t;
  dist::Communicator* comm;
};

static void contrastive_gathered_bw(Graph& g, const Node& n) {
  const GatheredContrastiveParams& p = n.params<GatheredContrastiveParams>();
  ops::ContrastiveRowsSaved s{n.saved[0].f32(), n.saved[0].f32() + p.M * p.E, n.saved[1].f32(), n.saved[2].f32(),
                              nullptr};
  // d img_all then d txt_all, [2, M, E], summed over ranks in one all-reduce.
  std::vector<float> d(size_t(2 * p.M * p.E), 0.f);
  ops::contrastive_loss_rows_backward(g.grad_ptr(n.out)[0], p.t, p.M, p.E, p.r0, p.B, s, d.data(),
                                      d.data() + p.M * p.E, g.grad_ptr(n.in(2)));
  p.comm->allreduce_sum(d.data(), int64_t(d.size()));
  for (int k = 0; k < 2; ++k)
    if (float* dx = g.grad_ptr(n.in(k))) {
      const float* src = d.data() + k * p.M * p.E + p.r0 * p.E;
      for (int64_t i = 0; i < p.B * p.E; ++i) dx[i] += src[i];
    }
}

Var clip_contrastive_loss_gathered(Graph& g, Var img, Var txt, Var logit_scale, dist::Communicator& comm,
                                   Tensor* logits_out) {
  const Shape si = g.shape(img), st = g.shape(txt);
  MMKIT_CHECK(si.n == 2 && si == st, "clip_contrastive_loss: image and text embeddings must both be [B, E], got ",
              si.str(), " and ", st.str());
  MMKIT_CHECK(g.value(logit_scale).numel() == 1, "clip_contrastive_loss: logit_scale must hold one value, got ",
              g.shape(logit_scale).str());
  const int64_t B = si[0], E = si[1], M = B * comm.size(), r0 = B * comm.rank();
  const float t = g.data(logit_scale)[0];
  // Every rank's features, in rank order (ranks hold equal row counts).
  Tensor all = g.alloc(Shape{2, M, E});
  comm.allgather(g.data(img), B * E, all.f32());
  comm.allgather(g.data(txt), B * E, all.f32() + M * E);
  Tensor rows = g.alloc(Shape{2, M, E});
  Tensor norms = g.alloc(Shape{2 * M + 1});
  Tensor dlogits = g.alloc(Shape{2, B, M});
  ops::ContrastiveRowsSaved s{rows.f32(), rows.f32() + M * E, norms.f32(), dlogits.f32(), nullptr};
  if (logits_out) {
    MMKIT_CHECK(logits_out->numel() == B * M && logits_out->dtype() == DType::f32,
                "clip_contrastive_loss: logits_out must be F32 [", B, ", ", M, "]");
    s.logits = logits_out->f32();
  }
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::contrastive_loss_rows_forward(all.f32(), all.f32() + M * E, t, M, E, r0, B, s);
  return g.record(loss, contrastive_gathered_bw, {img, txt, logit_scale},
                  GatheredContrastiveParams{B, M, E, r0, t, &comm}, {rows, norms, dlogits});
}

// ---------------------------------------------------------------- sigmoid loss
// Inputs {img, txt, logit_scale, logit_bias} (img: this rank's rows [B, E];
// txt: the same rows, or with comm this rank's rows of the M = N x B texts);
// saved {normalised image rows then text rows [B + M, E], norms [B + M + 2],
// dlogits [B, M]} as ops::SigmoidLossSaved. With several ranks
// the backward sums the gathered texts' gradients over the ranks (every
// rank's loss reads every rank's texts) and keeps this rank's rows.
struct SigmoidLossParams {
  int64_t B, M, E, r0;
  float t;
  dist::Communicator* comm;  // null: one process (M = B, r0 = 0)
};

static void sigmoid_loss_bw(Graph& g, const Node& n) {
  const SigmoidLossParams& p = n.params<SigmoidLossParams>();
  ops::SigmoidLossSaved s{n.saved[0].f32(), n.saved[0].f32() + p.B * p.E, n.saved[1].f32(), n.saved[2].f32(),
                          nullptr};
  const float dloss = g.grad_ptr(n.out)[0];
  float* dtxt = g.grad_ptr(n.in(1));
  if (!p.comm) {
    ops::sigmoid_loss_backward(dloss, p.t, p.B, p.M, p.E, s, g.grad_ptr(n.in(0)), dtxt, g.grad_ptr(n.in(2)),
                               g.grad_ptr(n.in(3)));
    return;
  }
  // Every rank calls the all-reduce, whether or not its texts need a gradient.
  std::vector<float> d(size_t(p.M * p.E), 0.f);
  ops::sigmoid_loss_backward(dloss, p.t, p.B, p.M, p.E, s, g.grad_ptr(n.in(0)), d.data(), g.grad_ptr(n.in(2)),
                             g.grad_ptr(n.in(3)));
  p.comm->allreduce_sum(d.data(), int64_t(d.size()));
  if (dtxt)
    for (int64_t i = 0; i < p.B * p.E; ++i) dtxt[i] += d[size_t(p.r0 * p.E + i)];
}

static Var sigmoid_loss_impl(Graph& g, Var img, Var txt, Var logit_scale, Var logit_bias, dist::Communicator* comm,
                             Tensor* logits_out) {
  const Shape si = g.shape(img), st = g.shape(txt);
  MMKIT_CHECK(si.n == 2 && si == st, "sigmoid_loss: image and text embeddings must both be [B, E], got ", si.str(),
              " and ", st.str());
  MMKIT_CHECK(g.value(logit_scale).numel() == 1, "sigmoid_loss: logit_scale must hold one value, got ",
              g.shape(logit_scale).str());
  MMKIT_CHECK(g.value(logit_bias).numel() == 1, "sigmoid_loss: logit_bias must hold one value, got ",
              g.shape(logit_bias).str());
  const int ranks = comm ? comm->size() : 1;
  const int64_t B = si[0], E = si[1], M = B * ranks, r0 = comm ? B * comm->rank() : 0;
  const float t = g.data(logit_scale)[0], bias = g.data(logit_bias)[0];
  const float* texts = g.data(txt);
  if (comm) {
    // Every rank's texts, in rank order (ranks hold equal row counts).
    Tensor all = g.alloc(Shape{M, E});
    comm->allgather(texts, B * E, all.f32());
    texts = all.f32();
  }
  Tensor rows = g.alloc(Shape{B + M, E});
  Tensor norms = g.alloc(Shape{B + M + 2}), dlogits = g.alloc(Shape{B, M});
  ops::SigmoidLossSaved s{rows.f32(), rows.f32() + B * E, norms.f32(), dlogits.f32(), nullptr};
  if (logits_out) {
    MMKIT_CHECK(logits_out->numel() == B * M && logits_out->dtype() == DType::f32,
                "sigmoid_loss: logits_out must be F32 [", B, ", ", M, "]");
    s.logits = logits_out->f32();
  }
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::sigmoid_loss_forward(g.data(img), texts, t, bias, B, M, E, r0, s);
  return g.record(loss, sigmoid_loss_bw, {img, txt, logit_scale, logit_bias}, SigmoidLossParams{B, M, E, r0, t, comm},
                  {rows, norms, dlogits});
}

Var sigmoid_loss(Graph& g, Var img, Var txt, Var logit_scale, Var logit_bias, Tensor* logits_out) {
  return sigmoid_loss_impl(g, img, txt, logit_scale, logit_bias, nullptr, logits_out);
}

Var sigmoid_loss_gathered(Graph& g, Var img, Var txt, Var logit_scale, Var logit_bias, dist::Communicator& comm,
                          Tensor* logits_out) {
  return sigmoid_loss_impl(g, img, txt, logit_scale, logit_bias, &comm, logits_out);
}

// ---------------------------------------------------------------- layernorm
// Inputs {x, w, b}; saved {mean, rstd} per row.
static void layernorm_bw(Graph& g, const Node& n) {
  const Tensor x = g.value(Var{n.in(0)});
  int64_t D = x.shape()[-1];
  ops::layernorm_backward(g.grad_ptr(n.out), x.f32(), val(g, n.in(1)), n.saved[0].f32(),
                          n.saved[1].f32(), g.grad_ptr(n.in(0)), g.grad_ptr(n.in(1)),
                          g.grad_ptr(n.in(2)), x.numel() / D, D);
}

Var layernorm(Graph& g, Var x, Var w, Var b, float eps) {
  const Shape s = g.shape(x);
  int64_t D = s[-1], rows = g.value(x).numel() / D;
  MMKIT_CHECK(g.shape(w).numel() == D && g.shape(b).numel() == D, "layernorm: weight ",
              g.shape(w).str(), "/bias ", g.shape(b).str(), " for width ", D);
  Tensor y = g.alloc(s);
  bool rg = g.needs_grad({x, w, b});
  Tensor mean, rstd;
  if (rg) {
    mean = g.alloc(Shape{rows});
    rstd = g.alloc(Shape{rows});
  }
  ops::layernorm_forward(g.data(x), g.data(w), g.data(b), y.f32(), rg ? mean.f32() : nullptr,
                         rg ? rstd.f32() : nullptr, rows, D, eps);
  return g.record(y, layernorm_bw, {x, w, b}, NoParams{}, {mean, rstd});
}

// ---------------------------------------------------------------- embedding
// Inputs {table [V, D]}; saved {ids}.
struct EmbeddingParams {
  int64_t D;
};

static void embedding_bw(Graph& g, const Node& n) {
  if (float* dt = g.grad_ptr(n.in(0)))
    ops::embedding_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dt, n.saved[0].numel(),
                            n.params<EmbeddingParams>().D);
}

Var embedding(Graph& g, Var table, const Tensor& ids) {
  const Shape ts = g.shape(table);
  MMKIT_CHECK(ts.n == 2, "embedding: table must be [V, D], got ", ts.str());
  MMKIT_CHECK(ids.dtype() == DType::i32, "embedding: ids must be I32");
  Shape os = ids.shape();
  MMKIT_CHECK(os.n < kMaxDims, "embedding: ids rank too high");
  os.d[os.n++] = ts[1];
  Tensor y = g.alloc(os);
  ops::embedding_forward(g.data(table), ids.ptr<int32_t>(), y.f32(), ids.numel(), ts[0], ts[1]);
  return g.record(y, embedding_bw, {table}, EmbeddingParams{ts[1]}, {ids});
}

// ---------------------------------------------------------------- patch embedding
// Inputs {images [B, C, H, W], W [D, C, p, p], b [D]}; saved {cols [B*P, C*p*p]} (im2col).
// Mixed precision: saved[1] holds cols rounded to bf16 and the GEMMs run as linear's bf16 ones.
struct PatchEmbedParams {
  int64_t B, C, H, W, p, D;
};

static void patch_embed_bw(Graph& g, const Node& n) {
  const PatchEmbedParams& p = n.params<PatchEmbedParams>();
  const Tensor& cols = n.saved[0];
  int64_t rows = cols.dim(0), K = cols.dim(1);
  float* dimg = g.grad_ptr(n.in(0));
  Tensor dcols;
  if (dimg) dcols = g.arena().zeros(cols.shape());
  if (n.saved[1].defined()) {
    const float* dy = g.grad_ptr(n.out);
    float* dW = g.grad_ptr(n.in(1));
    const uint16_t* dyh = dimg || dW ? bf16_grad(dy, rows, p.D) : nullptr;
    ops::linear_backward_bf16(dy, dyh, n.saved[1].ptr<uint16_t>(), dimg ? g.bf16_data(Var{n.in(1)}) : nullptr,
                              dimg ? dcols.f32() : nullptr, dW, g.grad_ptr(n.in(2)), rows, K, p.D);
  } else {
    ops::linear_backward(g.grad_ptr(n.out), cols.f32(), val(g, n.in(1)), dimg ? dcols.f32() : nullptr,
                         g.grad_ptr(n.in(1)), g.grad_ptr(n.in(2)), rows, K, p.D);
  }
  if (dimg) ops::unpatchify_accumulate(dcols.f32(), dimg, p.B, p.C, p.H, p.W, p.p);
}

Var patch_embed(Graph& g, Var images, Var W, Var b, int64_t p) {
  const Shape s = g.shape(images);
  const Shape ws = g.shape(W);
  MMKIT_CHECK(s.n == 4, "patch_embed: images must be [B, C, H, W], got ", s.str());
  MMKIT_CHECK(ws.n == 4 && ws[1] == s[1] && ws[2] == p && ws[3] == p, "patch_embed: weight ",
              ws.str(), " does not fit ", s[1], " channels and patch ", p);
  MMKIT_CHECK(s[2] % p == 0 && s[3] % p == 0, "patch_embed: image ", s[2], "x", s[3],
              " is not divisible by patch ", p);
  int64_t B = s[0], C = s[1], H = s[2], Wd = s[3], D = ws[0], P = (H / p) * (Wd / p);
  int64_t K = C * p * p;
  Tensor cols = g.alloc(Shape{B * P, K});
  ops::patchify(g.data(images), cols.f32(), B, C, H, Wd, p);
  Tensor y = g.alloc(Shape{B, P, D});
  const float* bias = b.valid() ? g.data(b) : nullptr;
  if (g.bf16()) {
    Tensor colsh = g.alloc(Shape{B * P, K}, DType::bf16);
    ops::f32_to_bf16(cols.f32(), colsh.ptr<uint16_t>(), B * P * K);
    ops::linear_forward_bf16(colsh.ptr<uint16_t>(), g.bf16_data(W), bias, y.f32(), B * P, K, D);
    return g.record(y, patch_embed_bw, {images, W, b}, PatchEmbedParams{B, C, H, Wd, p, D}, {cols, colsh});
  }
  ops::linear_forward(cols.f32(), g.data(W), bias, y.f32(), B * P, K, D);
  return g.record(y, patch_embed_bw, {images, W, b}, PatchEmbedParams{B, C, H, Wd, p, D}, {cols});
}

// ---------------------------------------------------------------- shape ops
// Inputs xs (all of them; the node holds up to Node::kMaxInputs). The output is [outer, sum of
// sizes] with sizes[k] = input k's extent along the axis times the inner extent.
constexpr int kMaxConcat = Node::kMaxInputs;

struct ConcatParams {
  int64_t outer;
  int64_t sizes[kMaxConcat];
};

static void concat_bw(Graph& g, const Node& n) {
  const ConcatParams& p = n.params<ConcatParams>();
  const int cnt = n.num_inputs();
  float* dxs[kMaxConcat];
  for (int k = 0; k < cnt; ++k) dxs[k] = g.grad_ptr(n.in(k));
  ops::concat_backward(g.grad_ptr(n.out), dxs, p.sizes, cnt, p.outer);
}

Var concat(Graph& g, const std::vector<Var>& xs, int axis) {
  MMKIT_CHECK(!xs.empty() && xs.size() <= size_t(kMaxConcat), "concat: 1 to ", kMaxConcat, " inputs supported, got ",
              xs.size());
  Shape s0 = g.shape(xs[0]);
  if (axis < 0) axis += s0.n;
  MMKIT_CHECK(axis >= 0 && axis < s0.n, "concat: axis out of range for ", s0.str());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s0[i];
  for (int i = axis + 1; i < s0.n; ++i) inner *= s0[i];
  Shape out = s0;
  out[axis] = 0;
  const float* ptrs[kMaxConcat];
  ConcatParams params{outer, {}};
  int64_t* sizes = params.sizes;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Shape s = g.shape(xs[k]);
    bool ok = s.n == s0.n;
    for (int i = 0; ok && i < s.n; ++i) ok = i == axis || s[i] == s0[i];
    MMKIT_CHECK(ok, "concat: shape ", s.str(), " does not match ", s0.str(), " off axis ", axis);
    out[axis] += s[axis];
    ptrs[k] = g.data(xs[k]);
    sizes[k] = s[axis] * inner;
  }
  Tensor y = g.alloc(out);
  ops::concat_forward(ptrs, sizes, int(xs.size()), y.f32(), outer);
  return g.record(y, concat_bw, xs, params);
}

static void reshape_bw(Graph& g, const Node& n) {
  if (g.alias_grad(n.in(0), n.out)) return;  // same elements, same order: no copy
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::axpy(1.f, g.grad_ptr(n.out), dx, g.value(Var{n.out}).numel());
}

Var reshape(Graph& g, Var x, const Shape& s) {
  // Shares x's data; in the backward x takes over the gradient buffer when it has none yet,
  // else the gradient is added to x's.
  Tensor y = g.value(x).reshape(s);
  return g.record(y, reshape_bw, {x});
}

struct TransposeParams {
  int a, b;  // the swapped axes, non-negative
};

static void transpose_bw(Graph& g, const Node& n) {
  const TransposeParams& p = n.params<TransposeParams>();
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::transpose_backward(g.grad_ptr(n.out), dx, g.shape(Var{n.in(0)}), p.a, p.b);
}

Var transpose(Graph& g, Var x, int a, int b) {
  Shape s = g.shape(x);
  if (a < 0) a += s.n;
  if (b < 0) b += s.n;
  MMKIT_CHECK(a >= 0 && b >= 0 && a < s.n && b < s.n, "transpose: axes out of range for ", s.str());
  Shape os = s;
  std::swap(os[a], os[b]);
  Tensor y = g.alloc(os);
  ops::transpose_forward(g.data(x), y.f32(), s, a, b);
  return g.record(y, transpose_bw, {x}, TransposeParams{a, b});
}

struct BroadcastBatchParams {
  int64_t B;
};

static void broadcast_batch_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in(0))) {
    int64_t inner = g.value(Var{n.in(0)}).numel();
    ops::sum_outer_accumulate(g.grad_ptr(n.out), dx, n.params<BroadcastBatchParams>().B, inner);
  }
}

Var broadcast_batch(Graph& g, Var x, int64_t B) {
  Shape s = g.shape(x);
  MMKIT_CHECK(s.n >= 1 && s[0] == 1, "broadcast_batch: leading dim must be 1, got ", s.str());
  Shape os = s;
  os[0] = B;
  Tensor y = g.alloc(os);
  int64_t inner = s.numel();
  for (int64_t b = 0; b < B; ++b) std::memcpy(y.f32() + b * inner, g.data(x), inner * 4);
  return g.record(y, broadcast_batch_bw, {x}, BroadcastBatchParams{B});
}

Var repeat_rows(Graph& g, Var x, int64_t N) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 2 && N >= 1, "repeat_rows: expected x [B, C] and N >= 1, got ", s.str(), " and ", N);
  Tensor idx = g.alloc(Shape{s[0] * N}, DType::i32);
  for (int64_t i = 0; i < s[0] * N; ++i) idx.ptr<int32_t>()[i] = int32_t(i / N);
  return reshape(g, gather_rows(g, x, idx), Shape{s[0], N, s[1]});
}

// ---------------------------------------------------------------- pooling
static void mean_tokens_bw(Graph& g, const Node& n) {
  const Shape s = g.shape(Var{n.in(0)});
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::mean_tokens_backward(g.grad_ptr(n.out), dx, s[0], s[1], s[2]);
}

Var mean_tokens(Graph& g, Var x) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3, "mean_tokens: expected [B, T, D], got ", s.str());
  Tensor y = g.alloc(Shape{s[0], s[2]});
  ops::mean_tokens_forward(g.data(x), y.f32(), s[0], s[1], s[2]);
  return g.record(y, mean_tokens_bw, {x});
}

// Inputs {x [B, T, D]}; saved {index I32 [B]}.
static void select_token_bw(Graph& g, const Node& n) {
  const Shape s = g.shape(Var{n.in(0)});
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::select_token_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, s[0], s[1], s[2]);
}

Var select_token(Graph& g, Var x, const Tensor& index) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3, "select_token: expected [B, T, D], got ", s.str());
  MMKIT_CHECK(index.dtype() == DType::i32 && index.numel() == s[0],
              "select_token: index must be I32 [", s[0], "]");
  Tensor y = g.alloc(Shape{s[0], s[2]});
  ops::select_token_forward(g.data(x), index.ptr<int32_t>(), y.f32(), s[0], s[1], s[2]);
  return g.record(y, select_token_bw, {x}, NoParams{}, {index});
}

Var select_token(Graph& g, Var x, int64_t t) {
  int64_t B = g.shape(x)[0];
  Tensor idx = g.alloc(Shape{B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) idx.ptr<int32_t>()[b] = int32_t(t);
  return select_token(g, x, idx);
}

// ---------------------------------------------------------------- dropout
// Inputs {x}; saved {mask} (0 or 1 / (1 - p) per element).
static void dropout_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::dropout_backward(g.grad_ptr(n.out), n.saved[0].f32(), dx, n.saved[0].numel());
}

Var dropout(Graph& g, Var x, float p) {
  if (!g.training || p <= 0.f) return x;
  MMKIT_CHECK(p < 1.f, "dropout: probability must be < 1, got ", p);
  Tensor y = g.alloc(g.shape(x));
  Tensor mask = g.alloc(g.shape(x));
  // Data-parallel: the mask of this rank's rows is the one a single process
  // draws for those rows of the global batch (x's outer dimension is the batch).
  const int64_t n = y.numel();
  const uint64_t index0 =
      g.batch_rows > 0 && n % g.batch_rows == 0 ? uint64_t(g.batch_row0 * (n / g.batch_rows)) : 0;
  ops::dropout_forward(g.data(x), y.f32(), mask.f32(), n, p, g.next_stream(), index0);
  return g.record(y, dropout_bw, {x}, NoParams{}, {mask});
}

// ---------------------------------------------------------------- attention
// Inputs {q, k, v} (whole tensors; the heads start at column qcol / kcol / vcol);
// saved {probs [B, H, Tq, Tk]}.
struct AttentionParams {
  ops::AttentionDims d;
  int64_t qcol, kcol, vcol;
};

static void attention_bw(Graph& g, const Node& n) {
  const AttentionParams& p = n.params<AttentionParams>();
  auto at = [](float* ptr, int64_t col) { return ptr ? ptr + col : nullptr; };
  ops::attention_backward(p.d, val(g, n.in(0)) + p.qcol, val(g, n.in(1)) + p.kcol, val(g, n.in(2)) + p.vcol,
                          n.saved[0].f32(), g.grad_ptr(n.out), at(g.grad_ptr(n.in(0)), p.qcol),
                          at(g.grad_ptr(n.in(1)), p.kcol), at(g.grad_ptr(n.in(2)), p.vcol));
}

Var attention(Graph& g, AttnIn q, AttnIn k, AttnIn v, int64_t D, const AttnOptions& opt) {
  const Shape qs = g.shape(q.var);
  const Shape ks = g.shape(k.var);
  const Shape vs = g.shape(v.var);
  MMKIT_CHECK(qs.n == 3 && ks.n == 3 && vs.n == 3, "attention: q/k/v must be [B, T, C], got ",
              qs.str(), " ", ks.str(), " ", vs.str());
  MMKIT_CHECK(qs[0] == ks[0] && ks[0] == vs[0] && ks[1] == vs[1],
              "attention: batch or key length mismatch: q ", qs.str(), " k ", ks.str(), " v ",
              vs.str());
  MMKIT_CHECK(opt.heads > 0 && D % opt.heads == 0, "attention: width ", D,
              " not divisible by heads ", opt.heads);
  MMKIT_CHECK(q.col + D <= qs[2] && k.col + D <= ks[2] && v.col + D <= vs[2],
              "attention: column range exceeds input width");
  ops::AttentionDims d;
  d.B = qs[0];
  d.H = opt.heads;
  d.Tq = qs[1];
  d.Tk = ks[1];
  d.dh = D / opt.heads;
  d.ldq = qs[2];
  d.ldk = ks[2];
  d.ldv = vs[2];
  d.scale = 1.f / std::sqrt(float(d.dh));
  d.causal = opt.causal;
  const uint8_t* pad = nullptr;
  if (opt.key_padding) {
    MMKIT_CHECK(opt.key_padding->numel() == d.B * d.Tk && opt.key_padding->dtype() == DType::u8,
                "attention: key padding mask must be U8 [", d.B, ", ", d.Tk, "]");
    pad = opt.key_padding->ptr<uint8_t>();
  }
  bool rg = g.needs_grad({q.var, k.var, v.var});
  Tensor probs;
  if (rg || opt.probs_out) probs = g.alloc(Shape{d.B, d.H, d.Tq, d.Tk});
  Tensor y = g.alloc(Shape{d.B, d.Tq, D});
  ops::attention_forward(d, g.data(q.var) + q.col, g.data(k.var) + k.col, g.data(v.var) + v.col,
                         pad, y.f32(), probs.defined() ? probs.f32() : nullptr);
  if (opt.probs_out) *opt.probs_out = probs;
  return g.record(y, attention_bw, {q.var, k.var, v.var}, AttentionParams{d, q.col, k.col, v.col}, {probs});
}

}  // namespace mmkit::ag

// ------------------------------------------------- soft cross-entropy, gather rows

namespace mmkit::ag {

// Inputs {logits}; saved {probs [N, K], targets [N, K]}.
static void soft_cross_entropy_bw(Graph& g, const Node& n) {
  const Tensor& probs = n.saved[0];
  if (float* dl = g.grad_ptr(n.in(0)))
    ops::soft_cross_entropy_backward(g.grad_ptr(n.out)[0], probs.f32(), n.saved[1].f32(), dl, probs.dim(0),
                                     probs.dim(1));
}

Var soft_cross_entropy(Graph& g, Var logits, const Tensor& targets) {
  const Shape s = g.shape(logits);
  MMKIT_CHECK(s.n == 2, "soft_cross_entropy: logits must be [N, K], got ", s.str());
  MMKIT_CHECK(targets.dtype() == DType::f32 && targets.shape() == s, "soft_cross_entropy: targets must be F32 ",
              s.str(), ", got ", dtype_name(targets.dtype()), " ", targets.shape().str());
  Tensor probs = g.alloc(s);
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::soft_cross_entropy_forward(g.data(logits), targets.f32(), probs.f32(), s[0], s[1]);
  return g.record(loss, soft_cross_entropy_bw, {logits}, NoParams{}, {probs, targets});
}

// Inputs {x}; saved {index I32 [M]}; R = elements per row of x.
struct GatherRowsParams {
  int64_t M, R;
};

static void gather_rows_bw(Graph& g, const Node& n) {
  const GatherRowsParams& p = n.params<GatherRowsParams>();
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::gather_rows_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, p.M, p.R);
}

Var gather_rows(Graph& g, Var x, const Tensor& index) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n >= 1 && index.dtype() == DType::i32 && index.shape().n == 1,
              "gather_rows: index must be I32 [M], got ", dtype_name(index.dtype()), " ", index.shape().str());
  const int64_t M = index.numel(), R = s[0] ? g.value(x).numel() / s[0] : 0;
  for (int64_t m = 0; m < M; ++m)
    MMKIT_CHECK(index.ptr<int32_t>()[m] >= 0 && index.ptr<int32_t>()[m] < s[0], "gather_rows: index ",
                index.ptr<int32_t>()[m], " at ", m, " outside [0, ", s[0], ")");
  Shape ys = s;
  ys[0] = M;
  Tensor y = g.alloc(ys);
  ops::gather_rows_forward(g.data(x), index.ptr<int32_t>(), y.f32(), M, R);
  return g.record(y, gather_rows_bw, {x}, GatherRowsParams{M, R}, {index});
}

}  // namespace mmkit::ag

namespace mmkit::ag {

// Inputs {x [B, T, D]}; saved {argmax I32 [B, D]}.
struct MaxTokensParams {
  int64_t B, T, D;
};

static void max_tokens_bw(Graph& g, const Node& n) {
  const MaxTokensParams& p = n.params<MaxTokensParams>();
  if (float* dx = g.grad_ptr(n.in(0)))
    ops::masked_max_tokens_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, p.B, p.T, p.D);
}

Var max_tokens(Graph& g, Var x, const Tensor* pad) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3, "max_tokens: expected [B, T, D], got ", s.str());
  if (pad)
    MMKIT_CHECK(pad->dtype() == DType::u8 && pad->numel() == s[0] * s[1], "max_tokens: padding mask must be U8 [",
                s[0], ", ", s[1], "]");
  Tensor y = g.alloc(Shape{s[0], s[2]});
  Tensor arg = g.alloc(Shape{s[0], s[2]}, DType::i32);
  ops::masked_max_tokens_forward(g.data(x), pad ? pad->ptr<uint8_t>() : nullptr, y.f32(), arg.ptr<int32_t>(), s[0],
                                 s[1], s[2]);
  return g.record(y, max_tokens_bw, {x}, MaxTokensParams{s[0], s[1], s[2]}, {arg});
}

// Inputs {a, c, q, e} (q, e may be absent); the backward reads the ReLU mask from the output.
struct RelationPairsParams {
  int64_t B, P, H;
};

static void relation_pairs_bw(Graph& g, const Node& n) {
  const RelationPairsParams& p = n.params<RelationPairsParams>();
  ops::relation_pairs_backward(g.grad_ptr(n.out), g.data(Var{n.out}), g.grad_ptr(n.in(0)), g.grad_ptr(n.in(1)),
                               g.grad_ptr(n.in(2)), g.grad_ptr(n.in(3)), p.B, p.P, p.H);
}

Var relation_pairs(Graph& g, Var a, Var c, Var q, Var e) {
  const Shape as = g.shape(a), cs = g.shape(c);
  MMKIT_CHECK(as.n == 3 && cs == as, "relation_pairs: expected a and c [B, P, H] of one shape, got ", as.str(),
              " and ", cs.str());
  if (q.valid())
    MMKIT_CHECK(g.shape(q) == Shape({as[0], as[2]}), "relation_pairs: q must be [", as[0], ", ", as[2], "], got ",
                g.shape(q).str());
  const Shape ys{as[0], as[1], as[1], as[2]};
  if (e.valid()) MMKIT_CHECK(g.shape(e) == ys, "relation_pairs: e must be ", ys.str(), ", got ", g.shape(e).str());
  Tensor y = g.alloc(ys);
  ops::relation_pairs_forward(g.data(a), g.data(c), q.valid() ? g.data(q) : nullptr, e.valid() ? g.data(e) : nullptr,
                              y.f32(), as[0], as[1], as[2]);
  return g.record(y, relation_pairs_bw, {a, c, q, e}, RelationPairsParams{as[0], as[1], as[2]});
}

// Inputs {p [B, P, K]}.
struct PairSqdiffParams {
  int64_t B, P, K;
};

static void pair_sqdiff_bw(Graph& g, const Node& n) {
  const PairSqdiffParams& p = n.params<PairSqdiffParams>();
  if (float* dp = g.grad_ptr(n.in(0)))
    ops::pair_sqdiff_backward(g.grad_ptr(n.out), g.data(Var{n.in(0)}), dp, p.B, p.P, p.K);
}

Var pair_sqdiff(Graph& g, Var p) {
  const Shape s = g.shape(p);
  MMKIT_CHECK(s.n == 3, "pair_sqdiff: expected p [B, P, K], got ", s.str());
  Tensor d = g.alloc(Shape{s[0], s[1], s[1], s[2]});
  ops::pair_sqdiff_forward(g.data(p), d.f32(), s[0], s[1], s[2]);
  return g.record(d, pair_sqdiff_bw, {p}, PairSqdiffParams{s[0], s[1], s[2]});
}

// ---------------------------------------------------------------- bmm
// Inputs {a [B, M, K], b [B, K, N]}.
struct BmmParams {
  int64_t B, M, K, N;
};

static void bmm_bw(Graph& g, const Node& n) {
  const BmmParams& p = n.params<BmmParams>();
  const int64_t B = p.B, M = p.M, K = p.K, N = p.N;
  const float* dy = g.grad_ptr(n.out);
  const float* a = val(g, n.in(0));
  const float* b = val(g, n.in(1));
  float* da = g.grad_ptr(n.in(0));
  float* db = g.grad_ptr(n.in(1));
  // One small product per batch row: parallel over rows, each GEMM single-threaded inside the
  // region (core/parallel.h), instead of waking the pool for every tiny GEMM.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; ++i) {
    if (da)  // da += dy @ b^T
      ops::gemm(false, true, M, K, N, 1.f, dy + i * M * N, N, b + i * K * N, N, 1.f, da + i * M * K, K);
    if (db)  // db += a^T @ dy
      ops::gemm(true, false, K, N, M, 1.f, a + i * M * K, K, dy + i * M * N, N, 1.f, db + i * K * N, N);
  }
}

Var bmm(Graph& g, Var a, Var b) {
  const Shape as = g.shape(a), bs = g.shape(b);
  MMKIT_CHECK(as.n == 3 && bs.n == 3 && as[0] == bs[0] && as[2] == bs[1], "bmm: ", as.str(), " @ ", bs.str(),
              " does not fit (expected [B, M, K] @ [B, K, N])");
  const int64_t B = as[0], M = as[1], K = as[2], N = bs[2];
  Tensor y = g.alloc(Shape{B, M, N});
#pragma omp parallel for schedule(static)  // as bmm_bw
  for (int64_t i = 0; i < B; ++i)
    ops::gemm(false, false, M, N, K, 1.f, g.data(a) + i * M * K, K, g.data(b) + i * K * N, N, 0.f,
              y.f32() + i * M * N, N);
  return g.record(y, bmm_bw, {a, b}, BmmParams{B, M, K, N});
}

// ---------------------------------------------------------------- grid_neighbours
// Inputs {x [B, G*G, C]}; k x k neighbourhoods.
struct GridNeighboursParams {
  int64_t B, G, C, k;
};

static void grid_neighbours_bw(Graph& g, const Node& n) {
  const GridNeighboursParams& p = n.params<GridNeighboursParams>();
  if (float* dx = g.grad_ptr(n.in(0))) ops::grid_neighbours_backward(g.grad_ptr(n.out), dx, p.B, p.G, p.C, p.k);
}

Var grid_neighbours(Graph& g, Var x, int64_t G, int64_t k) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3 && G > 0 && s[1] == G * G, "grid_neighbours: expected x [B, ", G * G, ", C] for a ", G,
              "x", G, " grid, got ", s.str());
  MMKIT_CHECK(k >= 1 && k % 2 == 1, "grid_neighbours: the neighbourhood size must be odd, got ", k);
  Tensor y = g.alloc(Shape{s[0], s[1], k * k * s[2]});
  ops::grid_neighbours_forward(g.data(x), y.f32(), s[0], G, s[2], k);
  return g.record(y, grid_neighbours_bw, {x}, GridNeighboursParams{s[0], G, s[2], k});
}

// ---------------------------------------------------------------- distance_logits
// Inputs {s [B, P, H], c [B, H, K], beta [H]}; saved {pos [P, K]}.
struct DistanceLogitsParams {
  int64_t B, P, H, K;
};

static void distance_logits_bw(Graph& g, const Node& n) {
  const DistanceLogitsParams& p = n.params<DistanceLogitsParams>();
  ops::distance_logits_backward(g.grad_ptr(n.out), val(g, n.in(1)), val(g, n.in(2)), n.saved[0].f32(),
                                g.grad_ptr(n.in(0)), g.grad_ptr(n.in(1)), g.grad_ptr(n.in(2)), p.B, p.P, p.H, p.K);
}

Var distance_logits(Graph& g, Var s, Var c, Var beta, const Tensor& pos) {
  const Shape ss = g.shape(s), cs = g.shape(c);
  MMKIT_CHECK(ss.n == 3 && cs.n == 3 && cs[0] == ss[0] && cs[1] == ss[2],
              "distance_logits: expected s [B, P, H] and c [B, H, K], got ", ss.str(), " and ", cs.str());
  const int64_t B = ss[0], P = ss[1], H = ss[2], K = cs[2];
  MMKIT_CHECK(g.shape(beta) == Shape({H}), "distance_logits: beta must be [", H, "], got ", g.shape(beta).str());
  MMKIT_CHECK(pos.dtype() == DType::f32 && pos.shape() == Shape({P, K}), "distance_logits: pos must be F32 [", P,
              ", ", K, "], got ", pos.shape().str());
  Tensor y = g.alloc(Shape{B, H, P});
  ops::distance_logits_forward(g.data(s), g.data(c), g.data(beta), pos.f32(), y.f32(), B, P, H, K);
  return g.record(y, distance_logits_bw, {s, c, beta}, DistanceLogitsParams{B, P, H, K}, {pos});
}

}  // namespace mmkit::ag
