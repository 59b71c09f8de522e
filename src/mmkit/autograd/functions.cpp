#include "mmkit/autograd/functions.h"

#include "mmkit/ops/contrastive_loss.h"

#include <cmath>
#include <cstring>

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
#include "mmkit/ops/grid_neighbours.h"
#include "mmkit/ops/layernorm.h"
#include "mmkit/ops/linear.h"
#include "mmkit/ops/masked_max.h"
#include "mmkit/ops/patch_embed.h"
#include "mmkit/ops/pooling.h"
#include "mmkit/ops/relation_pairs.h"
#include "mmkit/ops/shape_ops.h"
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
// Node: i = {in, out, row0, bias0}; the op uses rows [row0, row0 + out) of W
// and elements [bias0, bias0 + out) of b,
// which is how packed in_proj weights serve separate q/k/v projections.
static void linear_bw(Graph& g, const Node& n) {
  const Tensor x = g.value(Var{n.in[0]});
  int64_t in = n.i[0], out = n.i[1], r0 = n.i[2], b0 = n.i[3], N = x.numel() / in;
  float* dW = g.grad_ptr(n.in[1]);
  float* db = g.grad_ptr(n.in[2]);
  ops::linear_backward(g.grad_ptr(n.out), x.f32(), val(g, n.in[1]) + r0 * in, g.grad_ptr(n.in[0]),
                       dW ? dW + r0 * in : nullptr, db ? db + b0 : nullptr, N, in, out);
}

Var linear_rows(Graph& g, Var x, Var W, Var b, int64_t row0, int64_t rows, int64_t bias0) {
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
  ops::linear_forward(g.data(x), g.data(W) + row0 * in, b.valid() ? g.data(b) + bias0 : nullptr,
                      y.f32(), N, in, out);
  bool rg = g.needs_grad({x, W, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = linear_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.in[1] = W.id;
    n.in[2] = b.id;
    n.i[0] = in;
    n.i[1] = out;
    n.i[2] = row0;
    n.i[3] = bias0;
    g.add_node(n);
  }
  return r;
}

Var linear(Graph& g, Var x, Var W, Var b) { return linear_rows(g, x, W, b, 0, -1); }

// relu(linear): the ReLU is applied in place on the linear's output, and the backward masks the
// output's gradient in place (its buffer is not needed after this node), then runs linear's.
static void linear_relu_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  ops::relu_mask_inplace(y.f32(), g.grad_ptr(n.out), y.numel());
  linear_bw(g, n);
}

Var linear_relu(Graph& g, Var x, Var W, Var b) {
  Var r = linear(g, x, W, b);
  ops::relu_inplace(g.data(r), g.value(r).numel());
  if (g.needs_grad({x, W, b})) {
    Node& n = g.last_node();
    n.backward = linear_relu_bw;
  }
  return r;
}

// ---------------------------------------------------------------- matmul
static void matmul_bw(Graph& g, const Node& n) {
  const int64_t K = n.i[0], M = n.i[1], N = g.value(Var{n.in[0]}).numel() / K;
  const float* dy = g.grad_ptr(n.out);
  if (float* da = g.grad_ptr(n.in[0]))  // da += dy @ b^T
    ops::gemm(false, true, N, K, M, 1.f, dy, M, val(g, n.in[1]), M, 1.f, da, K);
  if (float* db = g.grad_ptr(n.in[1]))  // db += a^T @ dy
    ops::gemm(true, false, K, M, N, 1.f, val(g, n.in[0]), K, dy, M, 1.f, db, M);
}

Var matmul(Graph& g, Var a, Var b) {
  const Shape as = g.shape(a);
  const Shape bs = g.shape(b);
  MMKIT_CHECK(bs.n == 2 && as[-1] == bs[0], "matmul: ", as.str(), " @ ", bs.str(), " does not fit");
  const int64_t K = bs[0], M = bs[1], N = g.value(a).numel() / K;
  Tensor y = g.alloc(with_last(as, M));
  ops::gemm(false, false, N, M, K, 1.f, g.data(a), K, g.data(b), M, 0.f, y.f32(), M);
  bool rg = g.needs_grad({a, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = matmul_bw;
    n.out = r.id;
    n.in[0] = a.id;
    n.in[1] = b.id;
    n.i[0] = K;
    n.i[1] = M;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- add / mul / scale
static void add_bw(Graph& g, const Node& n) {
  const float* dy = g.grad_ptr(n.out);
  int64_t cnt = g.value(Var{n.out}).numel();
  for (int k = 0; k < 2; ++k)
    if (float* d = g.grad_ptr(n.in[k])) ops::axpy(1.f, dy, d, cnt);
}

Var add(Graph& g, Var a, Var b) {
  MMKIT_CHECK(g.shape(a) == g.shape(b), "add: shapes ", g.shape(a).str(), " and ",
              g.shape(b).str(), " differ");
  Tensor y = g.alloc(g.shape(a));
  ops::add_forward(g.data(a), g.data(b), y.f32(), y.numel());
  bool rg = g.needs_grad({a, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = add_bw;
    n.out = r.id;
    n.in[0] = a.id;
    n.in[1] = b.id;
    g.add_node(n);
  }
  return r;
}

static void add_broadcast_bw(Graph& g, const Node& n) {
  const float* dy = g.grad_ptr(n.out);
  int64_t total = g.value(Var{n.out}).numel(), inner = n.i[0];
  if (float* dx = g.grad_ptr(n.in[0])) ops::axpy(1.f, dy, dx, total);
  if (float* db = g.grad_ptr(n.in[1])) ops::sum_outer_accumulate(dy, db, total / inner, inner);
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
  bool rg = g.needs_grad({x, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = add_broadcast_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.in[1] = b.id;
    n.i[0] = inner;
    g.add_node(n);
  }
  return r;
}

static void mul_bw(Graph& g, const Node& n) {
  ops::mul_backward(g.grad_ptr(n.out), val(g, n.in[0]), val(g, n.in[1]), g.grad_ptr(n.in[0]),
                    g.grad_ptr(n.in[1]), g.value(Var{n.out}).numel());
}

Var mul(Graph& g, Var a, Var b) {
  MMKIT_CHECK(g.shape(a) == g.shape(b), "mul: shapes ", g.shape(a).str(), " and ",
              g.shape(b).str(), " differ");
  Tensor y = g.alloc(g.shape(a));
  ops::mul_forward(g.data(a), g.data(b), y.f32(), y.numel());
  bool rg = g.needs_grad({a, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = mul_bw;
    n.out = r.id;
    n.in[0] = a.id;
    n.in[1] = b.id;
    g.add_node(n);
  }
  return r;
}

static void scale_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::axpy(n.f[0], g.grad_ptr(n.out), dx, g.value(Var{n.out}).numel());
}

Var scale(Graph& g, Var x, float s) {
  Tensor y = g.alloc(g.shape(x));
  ops::scale_forward(g.data(x), s, y.f32(), y.numel());
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = scale_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.f[0] = s;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- activations
template <void (*Fwd)(const float*, float*, int64_t),
          void (*Bwd)(const float*, const float*, float*, int64_t)>
static void unary_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    Bwd(g.grad_ptr(n.out), val(g, n.in[0]), dx, g.value(Var{n.out}).numel());
}

template <void (*Fwd)(const float*, float*, int64_t),
          void (*Bwd)(const float*, const float*, float*, int64_t)>
static Var unary(Graph& g, Var x) {
  Tensor y = g.alloc(g.shape(x));
  Fwd(g.data(x), y.f32(), y.numel());
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = unary_bw<Fwd, Bwd>;
    n.out = r.id;
    n.in[0] = x.id;
    g.add_node(n);
  }
  return r;
}

Var gelu(Graph& g, Var x) { return unary<ops::gelu_forward, ops::gelu_backward>(g, x); }
Var quick_gelu(Graph& g, Var x) {
  return unary<ops::quick_gelu_forward, ops::quick_gelu_backward>(g, x);
}
Var relu(Graph& g, Var x) { return unary<ops::relu_forward, ops::relu_backward>(g, x); }

// ---------------------------------------------------------------- softmax family
static void softmax_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  int64_t cols = y.shape()[-1];
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::softmax_backward(g.grad_ptr(n.out), y.f32(), dx, y.numel() / cols, cols);
}

static void log_softmax_bw(Graph& g, const Node& n) {
  const Tensor y = g.value(Var{n.out});
  int64_t cols = y.shape()[-1];
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::log_softmax_backward(g.grad_ptr(n.out), y.f32(), dx, y.numel() / cols, cols);
}

static Var softmax_like(Graph& g, Var x, bool log) {
  Tensor y = g.alloc(g.shape(x));
  int64_t cols = g.shape(x)[-1];
  if (log)
    ops::log_softmax_forward(g.data(x), y.f32(), y.numel() / cols, cols);
  else
    ops::softmax_forward(g.data(x), y.f32(), y.numel() / cols, cols);
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = log ? log_softmax_bw : softmax_bw;
    n.out = r.id;
    n.in[0] = x.id;
    g.add_node(n);
  }
  return r;
}

Var softmax(Graph& g, Var x) { return softmax_like(g, x, false); }
Var log_softmax(Graph& g, Var x) { return softmax_like(g, x, true); }

static void cross_entropy_bw(Graph& g, const Node& n) {
  const Tensor& probs = n.saved[0];
  if (float* dl = g.grad_ptr(n.in[0]))
    ops::cross_entropy_backward(g.grad_ptr(n.out)[0], probs.f32(), n.saved[1].ptr<int32_t>(), dl,
                                probs.dim(0), probs.dim(1), n.f[0]);
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
  bool rg = g.needs_grad({logits});
  Var r = g.add_value(loss, rg);
  if (rg) {
    Node n;
    n.backward = cross_entropy_bw;
    n.out = r.id;
    n.in[0] = logits.id;
    n.saved[0] = probs;
    n.saved[1] = targets;
    n.f[0] = smoothing;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- contrastive loss
static ops::ContrastiveSaved contrastive_saved(const Node& n) {
  return {n.saved[0].f32(), n.saved[0].f32() + n.i[0] * n.i[1], n.saved[1].f32(), n.saved[2].f32(),
          nullptr};
}

static void contrastive_bw(Graph& g, const Node& n) {
  ops::contrastive_loss_backward(g.grad_ptr(n.out)[0], n.f[0], n.i[0], n.i[1], contrastive_saved(n),
                                 g.grad_ptr(n.in[0]), g.grad_ptr(n.in[1]), g.grad_ptr(n.in[2]));
}

Var clip_contrastive_loss(Graph& g, Var img, Var txt, Var logit_scale, Tensor* logits_out) {
  const Shape si = g.shape(img), st = g.shape(txt);
  MMKIT_CHECK(si.n == 2 && si == st, "clip_contrastive_loss: image and text embeddings must both be [B, E], got ",
              si.str(), " and ", st.str());
  MMKIT_CHECK(g.value(logit_scale).numel() == 1, "clip_contrastive_loss: logit_scale must hold one value, got ",
              g.shape(logit_scale).str());
  const int64_t B = si[0], E = si[1];
  const float t = g.data(logit_scale)[0];
  Node n;
  n.saved[0] = g.alloc(Shape{2, B, E});
  n.saved[1] = g.alloc(Shape{2 * B + 1});
  n.saved[2] = g.alloc(Shape{B, B});
  n.i[0] = B;
  n.i[1] = E;
  n.f[0] = t;
  ops::ContrastiveSaved s = contrastive_saved(n);
  if (logits_out) {
    MMKIT_CHECK(logits_out->numel() == B * B && logits_out->dtype() == DType::f32,
                "clip_contrastive_loss: logits_out must be F32 [", B, ", ", B, "]");
    s.logits = logits_out->f32();
  }
  Tensor loss = g.alloc(Shape{1});
  loss.f32()[0] = ops::contrastive_loss_forward(g.data(img), g.data(txt), t, B, E, s);
  bool rg = g.needs_grad({img, txt, logit_scale});
  Var r = g.add_value(loss, rg);
  if (rg) {
    n.backward = contrastive_bw;
    n.out = r.id;
    n.in[0] = img.id;
    n.in[1] = txt.id;
    n.in[2] = logit_scale.id;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- layernorm
static void layernorm_bw(Graph& g, const Node& n) {
  const Tensor x = g.value(Var{n.in[0]});
  int64_t D = x.shape()[-1];
  ops::layernorm_backward(g.grad_ptr(n.out), x.f32(), val(g, n.in[1]), n.saved[0].f32(),
                          n.saved[1].f32(), g.grad_ptr(n.in[0]), g.grad_ptr(n.in[1]),
                          g.grad_ptr(n.in[2]), x.numel() / D, D);
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
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = layernorm_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.in[1] = w.id;
    n.in[2] = b.id;
    n.saved[0] = mean;
    n.saved[1] = rstd;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- embedding
static void embedding_bw(Graph& g, const Node& n) {
  if (float* dt = g.grad_ptr(n.in[0]))
    ops::embedding_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dt, n.saved[0].numel(),
                            n.i[0]);
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
  bool rg = g.needs_grad({table});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = embedding_bw;
    n.out = r.id;
    n.in[0] = table.id;
    n.saved[0] = ids;
    n.i[0] = ts[1];
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- patch embedding
static void patch_embed_bw(Graph& g, const Node& n) {
  const Tensor& cols = n.saved[0];
  int64_t B = n.i[0], C = n.i[1], H = n.i[2], W = n.i[3], p = n.i[4], D = n.i[5];
  int64_t rows = cols.dim(0), K = cols.dim(1);
  float* dimg = g.grad_ptr(n.in[0]);
  Tensor dcols;
  if (dimg) dcols = g.arena().zeros(cols.shape());
  ops::linear_backward(g.grad_ptr(n.out), cols.f32(), val(g, n.in[1]),
                       dimg ? dcols.f32() : nullptr, g.grad_ptr(n.in[1]), g.grad_ptr(n.in[2]),
                       rows, K, D);
  if (dimg) ops::unpatchify_accumulate(dcols.f32(), dimg, B, C, H, W, p);
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
  ops::linear_forward(cols.f32(), g.data(W), b.valid() ? g.data(b) : nullptr, y.f32(), B * P, K,
                      D);
  bool rg = g.needs_grad({images, W, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = patch_embed_bw;
    n.out = r.id;
    n.in[0] = images.id;
    n.in[1] = W.id;
    n.in[2] = b.id;
    n.saved[0] = cols;
    int64_t dims[6] = {B, C, H, Wd, p, D};
    for (int k = 0; k < 6; ++k) n.i[k] = dims[k];
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- shape ops
// Node layout: i[0] = count, i[1] = outer, i[2 + k] = size of input k; the ids of inputs 0..3
// are in[0..3], those of inputs 4.. follow the sizes in i[2 + count + (k - 4)], so up to
// kMaxConcat inputs fit the node's 4 + 12 slots.
constexpr int kMaxConcat = 7;

static int concat_input(const Node& n, int k) { return k < 4 ? n.in[k] : int(n.i[2 + n.i[0] + (k - 4)]); }

static void concat_bw(Graph& g, const Node& n) {
  int cnt = int(n.i[0]);
  float* dxs[kMaxConcat];
  int64_t sizes[kMaxConcat];
  for (int k = 0; k < cnt; ++k) {
    dxs[k] = g.grad_ptr(concat_input(n, k));
    sizes[k] = n.i[2 + k];
  }
  ops::concat_backward(g.grad_ptr(n.out), dxs, sizes, cnt, n.i[1]);
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
  int64_t sizes[kMaxConcat];
  bool rg = false;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Shape s = g.shape(xs[k]);
    bool ok = s.n == s0.n;
    for (int i = 0; ok && i < s.n; ++i) ok = i == axis || s[i] == s0[i];
    MMKIT_CHECK(ok, "concat: shape ", s.str(), " does not match ", s0.str(), " off axis ", axis);
    out[axis] += s[axis];
    ptrs[k] = g.data(xs[k]);
    sizes[k] = s[axis] * inner;
    rg = rg || g.needs_grad({xs[k]});
  }
  Tensor y = g.alloc(out);
  ops::concat_forward(ptrs, sizes, int(xs.size()), y.f32(), outer);
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = concat_bw;
    n.out = r.id;
    n.i[0] = int64_t(xs.size());
    n.i[1] = outer;
    for (size_t k = 0; k < xs.size(); ++k) {
      if (k < 4)
        n.in[k] = xs[k].id;
      else
        n.i[2 + xs.size() + (k - 4)] = xs[k].id;
      n.i[2 + k] = sizes[k];
    }
    g.add_node(n);
  }
  return r;
}

static void reshape_bw(Graph& g, const Node& n) {
  if (g.alias_grad(n.in[0], n.out)) return;  // same elements, same order: no copy
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::axpy(1.f, g.grad_ptr(n.out), dx, g.value(Var{n.out}).numel());
}

Var reshape(Graph& g, Var x, const Shape& s) {
  // Shares x's data; in the backward x takes over the gradient buffer when it has none yet,
  // else the gradient is added to x's.
  Tensor y = g.value(x).reshape(s);
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = reshape_bw;
    n.out = r.id;
    n.in[0] = x.id;
    g.add_node(n);
  }
  return r;
}

static void transpose_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::transpose_backward(g.grad_ptr(n.out), dx, g.shape(Var{n.in[0]}), int(n.i[0]),
                            int(n.i[1]));
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
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = transpose_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.i[0] = a;
    n.i[1] = b;
    g.add_node(n);
  }
  return r;
}

static void broadcast_batch_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0])) {
    int64_t inner = g.value(Var{n.in[0]}).numel();
    ops::sum_outer_accumulate(g.grad_ptr(n.out), dx, n.i[0], inner);
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
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = broadcast_batch_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.i[0] = B;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- pooling
static void mean_tokens_bw(Graph& g, const Node& n) {
  const Shape s = g.shape(Var{n.in[0]});
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::mean_tokens_backward(g.grad_ptr(n.out), dx, s[0], s[1], s[2]);
}

Var mean_tokens(Graph& g, Var x) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3, "mean_tokens: expected [B, T, D], got ", s.str());
  Tensor y = g.alloc(Shape{s[0], s[2]});
  ops::mean_tokens_forward(g.data(x), y.f32(), s[0], s[1], s[2]);
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = mean_tokens_bw;
    n.out = r.id;
    n.in[0] = x.id;
    g.add_node(n);
  }
  return r;
}

static void select_token_bw(Graph& g, const Node& n) {
  const Shape s = g.shape(Var{n.in[0]});
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::select_token_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, s[0], s[1], s[2]);
}

Var select_token(Graph& g, Var x, const Tensor& index) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3, "select_token: expected [B, T, D], got ", s.str());
  MMKIT_CHECK(index.dtype() == DType::i32 && index.numel() == s[0],
              "select_token: index must be I32 [", s[0], "]");
  Tensor y = g.alloc(Shape{s[0], s[2]});
  ops::select_token_forward(g.data(x), index.ptr<int32_t>(), y.f32(), s[0], s[1], s[2]);
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = select_token_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.saved[0] = index;
    g.add_node(n);
  }
  return r;
}

Var select_token(Graph& g, Var x, int64_t t) {
  int64_t B = g.shape(x)[0];
  Tensor idx = g.alloc(Shape{B}, DType::i32);
  for (int64_t b = 0; b < B; ++b) idx.ptr<int32_t>()[b] = int32_t(t);
  return select_token(g, x, idx);
}

// ---------------------------------------------------------------- dropout
static void dropout_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::dropout_backward(g.grad_ptr(n.out), n.saved[0].f32(), dx, n.saved[0].numel());
}

Var dropout(Graph& g, Var x, float p) {
  if (!g.training || p <= 0.f) return x;
  MMKIT_CHECK(p < 1.f, "dropout: probability must be < 1, got ", p);
  Tensor y = g.alloc(g.shape(x));
  Tensor mask = g.alloc(g.shape(x));
  ops::dropout_forward(g.data(x), y.f32(), mask.f32(), y.numel(), p, g.next_stream());
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = dropout_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.saved[0] = mask;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- attention
// Node layout: i = {B, H, Tq, Tk, dh, ldq, ldk, ldv, qcol, kcol, vcol, causal},
// f[0] = scale, saved[0] = probs [B, H, Tq, Tk].
static ops::AttentionDims attn_dims(const Node& n) {
  ops::AttentionDims d;
  d.B = n.i[0];
  d.H = n.i[1];
  d.Tq = n.i[2];
  d.Tk = n.i[3];
  d.dh = n.i[4];
  d.ldq = n.i[5];
  d.ldk = n.i[6];
  d.ldv = n.i[7];
  d.causal = n.i[11] != 0;
  d.scale = n.f[0];
  return d;
}

static void attention_bw(Graph& g, const Node& n) {
  ops::AttentionDims d = attn_dims(n);
  auto at = [](float* p, int64_t col) { return p ? p + col : nullptr; };
  ops::attention_backward(d, val(g, n.in[0]) + n.i[8], val(g, n.in[1]) + n.i[9],
                          val(g, n.in[2]) + n.i[10], n.saved[0].f32(), g.grad_ptr(n.out),
                          at(g.grad_ptr(n.in[0]), n.i[8]), at(g.grad_ptr(n.in[1]), n.i[9]),
                          at(g.grad_ptr(n.in[2]), n.i[10]));
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
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = attention_bw;
    n.out = r.id;
    n.in[0] = q.var.id;
    n.in[1] = k.var.id;
    n.in[2] = v.var.id;
    n.saved[0] = probs;
    n.f[0] = d.scale;
    int64_t vals[12] = {d.B,   d.H,   d.Tq,  d.Tk,  d.dh,  d.ldq,
                        d.ldk, d.ldv, q.col, k.col, v.col, d.causal ? 1 : 0};
    for (int j = 0; j < 12; ++j) n.i[j] = vals[j];
    g.add_node(n);
  }
  return r;
}

}  // namespace mmkit::ag

// ------------------------------------------------- soft cross-entropy, gather rows

namespace mmkit::ag {

static void soft_cross_entropy_bw(Graph& g, const Node& n) {
  const Tensor& probs = n.saved[0];
  if (float* dl = g.grad_ptr(n.in[0]))
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
  bool rg = g.needs_grad({logits});
  Var r = g.add_value(loss, rg);
  if (rg) {
    Node n;
    n.backward = soft_cross_entropy_bw;
    n.out = r.id;
    n.in[0] = logits.id;
    n.saved[0] = probs;
    n.saved[1] = targets;
    g.add_node(n);
  }
  return r;
}

static void gather_rows_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::gather_rows_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, n.i[0], n.i[1]);
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
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = gather_rows_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.saved[0] = index;
    n.i[0] = M;
    n.i[1] = R;
    g.add_node(n);
  }
  return r;
}

}  // namespace mmkit::ag

namespace mmkit::ag {

static void max_tokens_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0]))
    ops::masked_max_tokens_backward(g.grad_ptr(n.out), n.saved[0].ptr<int32_t>(), dx, n.i[0], n.i[1], n.i[2]);
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
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = max_tokens_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.saved[0] = arg;
    n.i[0] = s[0];
    n.i[1] = s[1];
    n.i[2] = s[2];
    g.add_node(n);
  }
  return r;
}


// Node: in = {a, c, q, e}, i = {B, P, H}; the backward reads the ReLU mask from the output.
static void relation_pairs_bw(Graph& g, const Node& n) {
  ops::relation_pairs_backward(g.grad_ptr(n.out), g.data(Var{n.out}), g.grad_ptr(n.in[0]), g.grad_ptr(n.in[1]),
                               g.grad_ptr(n.in[2]), g.grad_ptr(n.in[3]), n.i[0], n.i[1], n.i[2]);
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
  bool rg = g.needs_grad({a, c, q, e});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = relation_pairs_bw;
    n.out = r.id;
    n.in[0] = a.id;
    n.in[1] = c.id;
    n.in[2] = q.valid() ? q.id : -1;
    n.in[3] = e.valid() ? e.id : -1;
    n.i[0] = as[0];
    n.i[1] = as[1];
    n.i[2] = as[2];
    g.add_node(n);
  }
  return r;
}

static void pair_sqdiff_bw(Graph& g, const Node& n) {
  if (float* dp = g.grad_ptr(n.in[0]))
    ops::pair_sqdiff_backward(g.grad_ptr(n.out), g.data(Var{n.in[0]}), dp, n.i[0], n.i[1], n.i[2]);
}

Var pair_sqdiff(Graph& g, Var p) {
  const Shape s = g.shape(p);
  MMKIT_CHECK(s.n == 3, "pair_sqdiff: expected p [B, P, K], got ", s.str());
  Tensor d = g.alloc(Shape{s[0], s[1], s[1], s[2]});
  ops::pair_sqdiff_forward(g.data(p), d.f32(), s[0], s[1], s[2]);
  bool rg = g.needs_grad({p});
  Var r = g.add_value(d, rg);
  if (rg) {
    Node n;
    n.backward = pair_sqdiff_bw;
    n.out = r.id;
    n.in[0] = p.id;
    n.i[0] = s[0];
    n.i[1] = s[1];
    n.i[2] = s[2];
    g.add_node(n);
  }
  return r;
}


// ---------------------------------------------------------------- bmm
static void bmm_bw(Graph& g, const Node& n) {
  const int64_t B = n.i[0], M = n.i[1], K = n.i[2], N = n.i[3];
  const float* dy = g.grad_ptr(n.out);
  const float* a = val(g, n.in[0]);
  const float* b = val(g, n.in[1]);
  float* da = g.grad_ptr(n.in[0]);
  float* db = g.grad_ptr(n.in[1]);
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
  bool rg = g.needs_grad({a, b});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = bmm_bw;
    n.out = r.id;
    n.in[0] = a.id;
    n.in[1] = b.id;
    n.i[0] = B;
    n.i[1] = M;
    n.i[2] = K;
    n.i[3] = N;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- grid_neighbours
static void grid_neighbours_bw(Graph& g, const Node& n) {
  if (float* dx = g.grad_ptr(n.in[0])) ops::grid_neighbours_backward(g.grad_ptr(n.out), dx, n.i[0], n.i[1], n.i[2], n.i[3]);
}

Var grid_neighbours(Graph& g, Var x, int64_t G, int64_t k) {
  const Shape s = g.shape(x);
  MMKIT_CHECK(s.n == 3 && G > 0 && s[1] == G * G, "grid_neighbours: expected x [B, ", G * G, ", C] for a ", G,
              "x", G, " grid, got ", s.str());
  MMKIT_CHECK(k >= 1 && k % 2 == 1, "grid_neighbours: the neighbourhood size must be odd, got ", k);
  Tensor y = g.alloc(Shape{s[0], s[1], k * k * s[2]});
  ops::grid_neighbours_forward(g.data(x), y.f32(), s[0], G, s[2], k);
  bool rg = g.needs_grad({x});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = grid_neighbours_bw;
    n.out = r.id;
    n.in[0] = x.id;
    n.i[0] = s[0];
    n.i[1] = G;
    n.i[2] = s[2];
    n.i[3] = k;
    g.add_node(n);
  }
  return r;
}

// ---------------------------------------------------------------- distance_logits
static void distance_logits_bw(Graph& g, const Node& n) {
  ops::distance_logits_backward(g.grad_ptr(n.out), val(g, n.in[1]), val(g, n.in[2]), n.saved[0].f32(),
                                g.grad_ptr(n.in[0]), g.grad_ptr(n.in[1]), g.grad_ptr(n.in[2]), n.i[0], n.i[1],
                                n.i[2], n.i[3]);
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
  bool rg = g.needs_grad({s, c, beta});
  Var r = g.add_value(y, rg);
  if (rg) {
    Node n;
    n.backward = distance_logits_bw;
    n.out = r.id;
    n.in[0] = s.id;
    n.in[1] = c.id;
    n.in[2] = beta.id;
    n.saved[0] = pos;
    n.i[0] = B;
    n.i[1] = P;
    n.i[2] = H;
    n.i[3] = K;
    g.add_node(n);
  }
  return r;
}

}  // namespace mmkit::ag
