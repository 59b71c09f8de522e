#include "mmkit/nn/attention_pool.h"

namespace mmkit::nn {

void AttentionPool::init(const std::string& prefix, int64_t dim, int64_t heads, int64_t mlp_dim, Activation act,
                         float eps, Rng& rng) {
  probe.init(prefix + ".probe", Shape{1, 1, dim}, false);
  init_trunc_normal(probe, 0.02f, rng);
  attn.init(prefix + ".attn", dim, heads, rng);
  ln.init(prefix + ".ln", dim, eps);
  mlp.init(prefix + ".mlp.c_fc", prefix + ".mlp.c_proj", dim, mlp_dim, act, 0.f, rng);
}

void AttentionPool::collect(ParamList& out) {
  out.push_back(&probe);
  attn.collect(out);
  ln.collect(out);
  mlp.collect(out);
}

Var attention_pool(Graph& g, AttentionPool& m, Var x) {
  const Shape s = g.shape(x);
  const int64_t B = s[0], D = s[2];
  Var q = ag::broadcast_batch(g, g.param(m.probe), B);          // [B, 1, D]
  Var h = cross_attention(g, m.attn, q, x);                      // [B, 1, D]
  h = ag::add(g, h, mlp(g, m.mlp, layer_norm(g, m.ln, h)));
  return ag::reshape(g, h, Shape{B, D});
}

}  // namespace mmkit::nn
