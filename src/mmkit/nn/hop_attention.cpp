#include "mmkit/nn/hop_attention.h"

#include <cstring>

namespace mmkit::nn {

void HopAttention::init(const std::string& prefix, const HopConfig& c, Rng& rng) {
  MMKIT_CHECK(c.in_dim > 0 && c.grid > 0 && c.channels > 0 && c.heads > 0 && c.cond_dim > 0 && c.out_dim > 0,
              "hop attention: in_dim, grid, channels, heads, cond_dim and out_dim must be positive, got ", c.in_dim,
              ", ", c.grid, ", ", c.channels, ", ", c.heads, ", ", c.cond_dim, ", ", c.out_dim);
  MMKIT_CHECK(c.beta_scale > 0.f && c.beta_init >= 0.f, "hop attention: beta_scale must be > 0 and beta_init >= 0, got ",
              c.beta_scale, " and ", c.beta_init);
  MMKIT_CHECK(c.kernel >= 1 && c.kernel % 2 == 1, "hop attention: kernel must be odd, got ", c.kernel);
  MMKIT_CHECK(c.count >= 0, "hop attention: count must be >= 0, got ", c.count);
  MMKIT_CHECK(c.exclude >= 0.f, "hop attention: exclude must be >= 0, got ", c.exclude);
  MMKIT_CHECK(c.relate_scale > 0.f, "hop attention: relate_scale must be > 0, got ", c.relate_scale);
  MMKIT_CHECK(!c.dist_pool || c.count > 0, "hop attention: dist_pool needs the count cells (count > 0)");
  cfg = c;
  const int64_t kk = c.kernel * c.kernel;
  local1.init(join(prefix, "local1"), kk * c.in_dim, c.channels, true, rng);
  local2.init(join(prefix, "local2"), kk * c.channels, c.channels, true, rng);
  find.init(join(prefix, "find"), c.cond_dim, c.channels * c.heads, true, rng);
  relate.init(join(prefix, "relate"), c.cond_dim, c.channels * c.heads, true, rng);
  beta.init(join(prefix, "beta"), Shape{c.heads}, false);
  if (beta.value.defined())
    for (int64_t h = 0; h < c.heads; ++h) beta.value.f32()[h] = (h % 2 == 0 ? 1.f : -1.f) * c.beta_init / c.beta_scale;
  if (c.count > 0) {
    count.init(join(prefix, "count"), c.channels, c.count, true, rng);
    count_anchor.init(join(prefix, "count_anchor"), c.heads * c.channels, c.count, false, rng);
    count_cond.init(join(prefix, "count_cond"), c.cond_dim, c.count, false, rng);
    relate_count.init(join(prefix, "relate_count"), c.count, c.heads, false, rng);
  }
  if (c.dist_pool) {
    dist_beta.init(join(prefix, "dist_beta"), Shape{2}, false);
    if (dist_beta.value.defined()) {
      dist_beta.value.f32()[0] = c.dist_beta / c.beta_scale;
      dist_beta.value.f32()[1] = -c.dist_beta / c.beta_scale;
    }
  }
  out.init(join(prefix, "out"), c.heads * (2 + 2 * c.channels) + c.count + (c.dist_pool ? 2 * c.heads * c.count : 0),
           c.out_dim, true, rng);
}

void HopAttention::collect(ParamList& p) {
  local1.collect(p);
  local2.collect(p);
  find.collect(p);
  relate.collect(p);
  p.push_back(&beta);
  if (cfg.count > 0) {
    count.collect(p);
    count_anchor.collect(p);
    count_cond.collect(p);
    relate_count.collect(p);
  }
  if (cfg.dist_pool) p.push_back(&dist_beta);
  out.collect(p);
}

Var hop_local(Graph& g, HopAttention& m, Var cells) {
  const HopConfig& c = m.cfg;
  const Shape s = g.shape(cells);
  MMKIT_CHECK(s.n == 3 && s[1] == c.grid * c.grid && s[2] == c.in_dim, "hop attention: expected cells [B, ",
              c.grid * c.grid, ", ", c.in_dim, "], got ", s.str());
  Var L = ag::gelu(g, linear(g, m.local1, ag::grid_neighbours(g, cells, c.grid, c.kernel)));  // [B, P, C2]
  return ag::gelu(g, linear(g, m.local2, ag::grid_neighbours(g, L, c.grid, c.kernel)));
}

Var hop_count_cells(Graph& g, HopAttention& m, Var L) {
  if (m.cfg.count == 0) return {};
  return linear(g, m.count, L);  // [B, P, K]
}

namespace {
// -k P (a1 summed over each cell's k x k neighbourhood, zero outside the grid): a1 [B, H, P].
Tensor exclusion(const Tensor& a1, int64_t G, int64_t kernel, float k) {
  const int64_t BH = a1.shape()[0] * a1.shape()[1], P = G * G, r = kernel / 2;
  Tensor ex = Tensor::empty(a1.shape());
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t p = 0; p < P; ++p) {
      const int64_t y = p / G, x0 = p % G;
      float sum = 0.f;
      for (int64_t dy = -r; dy <= r; ++dy)
        for (int64_t dx = -r; dx <= r; ++dx)
          if (y + dy >= 0 && y + dy < G && x0 + dx >= 0 && x0 + dx < G) sum += a1.f32()[bh * P + (y + dy) * G + x0 + dx];
      ex.f32()[bh * P + p] = -k * float(P) * sum;
    }
  return ex;
}

// Distance pooling over the count cells (HopConfig::dist_pool): for each head h, direction d
// (nearest, furthest) and count channel k, a softmax over the cells of
//   gain z[p, k] - beta_d |pos_p - x_h|^2 + ex[h, p]          (ops/distance_logits.h)
// and the squared distance it attends to (|pos - x_h|^2 taken as a constant there): [B, H*2*K].
// beta_d = beta_scale * theta_d, theta = m.dist_beta [2], initialised to +-dist_beta / beta_scale.
Var distance_pool(Graph& g, HopAttention& m, Var z, Var x, const Tensor& ex, const Tensor& pos) {
  const HopConfig& c = m.cfg;
  const Shape zs = g.shape(z);
  const int64_t B = zs[0], P = zs[1], K = zs[2], H = c.heads, K2 = 2 * K;
  auto index = [&](int64_t n, auto f) {
    Tensor t = g.alloc(Shape{n}, DType::i32);
    for (int64_t i = 0; i < n; ++i) t.ptr<int32_t>()[i] = int32_t(f(i));
    return t;
  };
  // Scores [B*H, P, 2K]: question b's z, once per direction, for each of its heads.
  Var zz = ag::reshape(g, ag::concat(g, {z, z}, 2), Shape{B, P * K2});
  Var s = ag::reshape(g, ag::gather_rows(g, zz, index(B * H, [&](int64_t i) { return i / H; })), Shape{B * H, P, K2});
  // Each row's point [B*H, 2K, 2] and beta [2K] (+beta_0 for the K nearest rows, beta_1 for the rest).
  Var xr = ag::reshape(g, ag::gather_rows(g, ag::reshape(g, x, Shape{B * H, 2}), index(B * H * K2, [&](int64_t i) { return i / K2; })),
                       Shape{B * H, K2, 2});
  Var beta = ag::reshape(g, ag::gather_rows(g, ag::reshape(g, g.param(m.dist_beta), Shape{2, 1}), index(K2, [&](int64_t i) { return i / K; })),
                         Shape{K2});
  Var logits = ag::distance_logits(g, ag::scale(g, s, c.dist_gain), xr, ag::scale(g, beta, c.beta_scale), pos);  // [B*H, 2K, P]
  const Tensor& X = g.value(x);  // [B, H, 2]
  Tensor d2 = g.alloc(Shape{B * H, P, 1});
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t p = 0; p < P; ++p) {
      const float dx = pos.f32()[2 * p] - X.f32()[2 * bh], dy = pos.f32()[2 * p + 1] - X.f32()[2 * bh + 1];
      d2.f32()[bh * P + p] = dx * dx + dy * dy;
    }
  if (ex.defined()) {  // the exclusion of each (question, head), the same for its 2K rows
    Tensor cst = g.alloc(Shape{B * H, K2, P});
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t k = 0; k < K2; ++k) std::memcpy(cst.f32() + (bh * K2 + k) * P, ex.f32() + bh * P, size_t(P) * 4);
    logits = ag::add(g, logits, g.constant(cst));
  }
  Var a = ag::softmax(g, logits);                                                   // [B*H, 2K, P]
  return ag::reshape(g, ag::bmm(g, a, g.constant(d2)), Shape{B, H * K2});          // [B, 2HK]
}
}  // namespace

Var hop_readout(Graph& g, HopAttention& m, Var L, Var count_cells, Var cond, HopProbes* probes, Var find_cond) {
  const HopConfig& c = m.cfg;
  const Shape s = g.shape(L);
  const int64_t G = c.grid, P = G * G, H = c.heads, C2 = c.channels;
  MMKIT_CHECK(s.n == 3 && s[1] == P && s[2] == C2, "hop attention: expected local features [B, ", P, ", ", C2,
              "], got ", s.str());
  const int64_t B = s[0];
  MMKIT_CHECK(g.shape(cond) == Shape({B, c.cond_dim}), "hop attention: expected cond [", B, ", ", c.cond_dim,
              "], got ", g.shape(cond).str());
  MMKIT_CHECK(count_cells.valid() == (c.count > 0) &&
                  (!count_cells.valid() || g.shape(count_cells) == Shape({B, P, c.count})),
              "hop attention: expected count cells [", B, ", ", P, ", ", c.count, "]",
              count_cells.valid() ? ", got " + g.shape(count_cells).str() : "");
  MMKIT_CHECK(!find_cond.valid() || g.shape(find_cond) == Shape({B, c.cond_dim}),
              "hop attention: expected find_cond [", B, ", ", c.cond_dim, "]");
  Tensor pos = g.alloc(Shape{P, 2});
  for (int64_t p = 0; p < P; ++p) {
    pos.f32()[2 * p] = (2.f * float(p % G) + 1.f) / float(G) - 1.f;
    pos.f32()[2 * p + 1] = (2.f * float(p / G) + 1.f) / float(G) - 1.f;
  }

  // Hop 1: content attention with a per-head query from the question.
  Var q1 = ag::reshape(g, linear(g, m.find, find_cond.valid() ? find_cond : cond), Shape{B, C2, H});
  Var a1 = ag::softmax(g, ag::transpose(g, ag::bmm(g, L, q1), 1, 2));  // [B, H, P]
  Var x = ag::matmul(g, a1, g.constant(pos));                           // [B, H, 2]
  Var r1 = ag::bmm(g, a1, L);                                           // [B, H, C2]

  // The count's cells: relu(W_c L_p + b_c + A_c r1 + V_c q), anchored on what hop 1 found and
  // on the question. They are also hop 2's second content term: the cells of objects that are not
  // X are what both "how many" and "closest / furthest" look for, and counting learns them first.
  Var z;  // [B, P, K]
  if (count_cells.valid()) {
    Var anchor = ag::add(g, linear(g, m.count_anchor, ag::reshape(g, r1, Shape{B, H * C2})),
                         linear(g, m.count_cond, cond));                                     // [B, K]
    z = ag::relu(g, ag::add(g, count_cells, ag::repeat_rows(g, anchor, P)));                    // [B, P, K]
  }

  // Hop 2: content plus a distance bias from the attended point.
  Var q2 = ag::reshape(g, linear(g, m.relate, cond), Shape{B, C2, H});
  Var content2 = ag::bmm(g, L, q2);                                                       // [B, P, H]
  if (z.valid()) content2 = ag::add(g, content2, linear(g, m.relate_count, z));
  if (c.relate_scale != 1.f) content2 = ag::scale(g, content2, c.relate_scale);
  Var beta = ag::scale(g, g.param(m.beta), c.beta_scale);
  Var logits2 = ag::distance_logits(g, content2, x, beta, pos);  // [B, H, P]
  // Minus k P (a1 summed over each cell's k x k neighbourhood), a1 taken as a constant: hop 1
  // lands on one or two cells of X, and the neighbourhood covers the rest of X (10 px on 5-px
  // cells), so the nearest cell left is another object's, not X's edge.
  Tensor ex;  // [B, H, P] (cfg.exclude > 0 only)
  if (c.exclude > 0.f) {
    ex = exclusion(g.value(a1), G, c.kernel, c.exclude);
    logits2 = ag::add(g, logits2, g.constant(ex));
  }
  Var a2 = ag::softmax(g, logits2);  // [B, H, P]
  Var r2 = ag::bmm(g, a2, L);        // [B, H, C2]
  if (probes) {
    probes->find = g.value(a1);
    probes->relate = g.value(a2);
  }
  Var all = ag::reshape(g, ag::concat(g, {x, r1, r2}, 2), Shape{B, H * (2 + 2 * C2)});
  if (z.valid()) all = ag::concat(g, {all, ag::mean_tokens(g, z)}, 1);  // the count: [B, H*(2 + 2 C2) + K]
  if (c.dist_pool) all = ag::concat(g, {all, distance_pool(g, m, z, x, ex, pos)}, 1);  // + [B, 2HK]
  return linear(g, m.out, all);
}

Var hop_attention(Graph& g, HopAttention& m, Var cells, Var cond, HopProbes* probes) {
  Var L = hop_local(g, m, cells);
  return hop_readout(g, m, L, hop_count_cells(g, m, L), cond, probes);
}

}  // namespace mmkit::nn
