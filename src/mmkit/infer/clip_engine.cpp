#include "mmkit/infer/clip_engine.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include "mmkit/core/error.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/ops/attention.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/ops/layernorm.h"
#include "mmkit/ops/patch_embed.h"
#include "mmkit/util/file_util.h"

namespace mmkit::infer {

namespace {

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

Epilogue activation_epilogue(const std::string& name) {
  switch (nn::activation_from_name(name)) {
    case nn::Activation::gelu: return Epilogue::gelu;
    case nn::Activation::gelu_tanh: return Epilogue::gelu_tanh;
    case nn::Activation::quick_gelu: break;
  }
  return Epilogue::quick_gelu;
}

}  // namespace

// The model's tensors by OpenAI/mmkit name, whatever their dtype; small ones widened to f32 on request.
struct ClipEngine::Tensors {
  struct Entry {
    DType dtype = DType::f32;
    const void* data = nullptr;
    std::vector<int64_t> shape;
    std::string source;  // name in the file, for messages
  };
  std::map<std::string, Entry> by_name;
  std::deque<std::vector<float>> owned;  // widened copies
  std::string where;                     // file path for messages
  const io::SafetensorsFile* file = nullptr;
  bool from_file = false;                // entries point into `file`'s mapping
  bool widen = false;                    // F16/BF16 Linears computed in f32 (an unquantised file, as load_clip reads it)

  const Entry& get(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = by_name.find(name);
    MMKIT_CHECK(it != by_name.end(), where, ": missing tensor '", name, "' (expected ", Shape(shape).str(), ")");
    MMKIT_CHECK(it->second.shape == shape, where, ": tensor '", it->second.source, "' has shape ",
                Shape(it->second.shape).str(), ", expected ", Shape(shape).str());
    return it->second;
  }
  // f32 view (F32 data, checked finite) or a widened copy (F16/BF16).
  const float* f32(const std::string& name, const std::vector<int64_t>& shape) {
    const Entry& e = get(name, shape);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const float* p = nullptr;
    if (e.dtype == DType::f32 && reinterpret_cast<uintptr_t>(e.data) % 4 == 0) {
      p = static_cast<const float*>(e.data);
    } else {
      MMKIT_CHECK(e.dtype == DType::f32 || e.dtype == DType::f16 || e.dtype == DType::bf16, where,
                  ": tensor '", e.source, "' has dtype ", dtype_name(e.dtype), ", expected F32, F16 or BF16");
      io::TensorView v;
      v.name = e.source;
      v.dtype = e.dtype;
      v.shape = e.shape;
      v.data = e.data;
      v.nbytes = size_t(n) * dtype_size(e.dtype);
      owned.push_back(io::to_f32(v));
      p = owned.back().data();
    }
    if (from_file) io::require_finite(p, size_t(n), e.source, Shape(shape), where);
    return p;
  }
  // Refuses non-finite values in an F32/F16/BF16 entry of n values (I8 is always finite).
  void check_finite(const Entry& e, int64_t n) const {
    if (e.dtype == DType::f32) {
      io::require_finite(static_cast<const float*>(e.data), size_t(n), e.source, Shape(e.shape), where);
      return;
    }
    if (e.dtype != DType::f16 && e.dtype != DType::bf16) return;
    const uint16_t mask = e.dtype == DType::f16 ? 0x7c00 : 0x7f80;  // exponent all ones: inf or NaN
    const uint16_t* h = static_cast<const uint16_t*>(e.data);
    int64_t bad = -1;
#pragma omp parallel for reduction(max : bad) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i)
      if ((h[i] & mask) == mask) bad = std::max(bad, i);
    MMKIT_CHECK(bad < 0, where, ": tensor '", e.source, "' holds a non-finite value at element ", bad, " of ",
                Shape(e.shape).str(), "; the checkpoint is corrupt");
  }
  // Hugging Face files keep q, k and v apart ("<b>.attn.{q,k,v}.{weight,bias}", io::rename_views);
  // the engine computes them as one [3W, W] Linear: joined (widened to f32) here, per tower at its
  // first use, into `owned`. A no-op when the packed in_proj is there already.
  void join_qkv(const std::string& b, int64_t W) {
    for (const char* kind : {"weight", "bias"}) {
      const std::string packed = b + ".attn.in_proj_" + kind;
      if (by_name.count(packed)) continue;
      const std::vector<int64_t> part = kind[0] == 'w' ? std::vector<int64_t>{W, W} : std::vector<int64_t>{W};
      std::vector<float> joined;
      std::string src;
      for (const char* n : {"q", "k", "v"}) {
        const std::string name = b + ".attn." + n + "." + kind;
        const float* p = f32(name, part);  // checked like any tensor (finite, shape)
        joined.insert(joined.end(), p, p + (kind[0] == 'w' ? W * W : W));
        src += (src.empty() ? "" : " + ") + get(name, part).source;
      }
      owned.push_back(std::move(joined));
      by_name[packed] = {DType::f32, owned.back().data(),
                         kind[0] == 'w' ? std::vector<int64_t>{3 * W, W} : std::vector<int64_t>{3 * W}, src};
    }
  }
  // load_clip's strict check (io::bind_remapped) on names and shapes only, nothing read: every
  // parameter of the configured model is there (its q/k/v, or its projection as "<name>.T", count
  // for the packed / plain one), and nothing else.
  void check_names(const ClipConfig& cfg) const {
    Clip m;
    {
      ShapeOnlyScope shapes_only;
      m.init(cfg, 0);
      if (by_name.count("logit_bias")) m.add_logit_bias(0.f);
    }
    io::ProblemList problems;
    std::map<std::string, bool> used;
    auto expect = [&](const std::string& name, const std::vector<int64_t>& shape) {
      auto it = by_name.find(name);
      if (it == by_name.end()) return false;
      used[name] = true;
      if (it->second.shape != shape)
        problems.add("tensor '" + it->second.source + "': got " + Shape(it->second.shape).str() + ", expected " +
                     Shape(shape).str());
      return true;
    };
    for (Parameter* p : m.parameters()) {
      const std::vector<int64_t> shape = p->value.shape().vec();
      if (expect(p->name, shape)) continue;
      const size_t ip = p->name.find(".attn.in_proj_");
      if (ip != std::string::npos && !shape.empty() && shape[0] % 3 == 0) {
        const std::string kind = p->name.substr(ip + 14);  // weight | bias
        std::vector<int64_t> part = shape;
        part[0] /= 3;
        bool all = true;
        for (const char* n : {"q", "k", "v"}) all = expect(p->name.substr(0, ip) + ".attn." + n + "." + kind, part) && all;
        if (all) continue;
      }
      if (shape.size() == 2 && expect(p->name + ".T", {shape[1], shape[0]})) continue;
      problems.add("missing tensor for '" + p->name + "' (expected " + Shape(shape).str() + ")");
    }
    for (const auto& [name, e] : by_name)
      if (!used.count(name)) problems.add("unexpected tensor '" + e.source + "' " + Shape(e.shape).str());
    if (problems.count()) fail(where, " does not match the model ", problems.str());
  }
  // A Hugging Face CLIP projection stored as nn.Linear [out, in] under "<name>.T": transposed once.
  void transpose_marked(const std::string& name, int64_t rows, int64_t cols) {
    if (by_name.count(name) || !by_name.count(name + ".T")) return;
    const float* p = f32(name + ".T", {cols, rows});
    std::vector<float> tr(size_t(rows * cols));
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < rows; ++j) tr[size_t(j * cols + i)] = p[i * rows + j];
    owned.push_back(std::move(tr));
    by_name[name] = {DType::f32, owned.back().data(), {rows, cols}, get(name + ".T", {cols, rows}).source + " (transposed)"};
  }
  // A Linear's weights [out, in] (+ bias [out] if bias_name is non-empty).
  LinearSource linear(const std::string& w_name, const std::string& b_name, int64_t out, int64_t in) {
    const Entry& w = get(w_name, {out, in});
    LinearSource s;
    s.name = w_name;
    s.out = out;
    s.in = in;
    s.w = w.data;
    switch (w.dtype) {
      case DType::f32: {
        s.kind = WeightKind::f32;
        s.w = f32(w_name, {out, in});  // checks finiteness (and copies a misaligned tensor)
        break;
      }
      case DType::f16:
      case DType::bf16:
        if (widen) {  // widened once, this tensor only, when its tower is prepared
          s.kind = WeightKind::f32;
          s.w = f32(w_name, {out, in});
          break;
        }
        s.kind = w.dtype == DType::f16 ? WeightKind::f16 : WeightKind::bf16;
        if (from_file) check_finite(w, out * in);
        break;
      case DType::i8: {
        s.kind = WeightKind::int8;
        const Entry& sc = get(w_name + "_scale", {out});
        MMKIT_CHECK(sc.dtype == DType::f32, where, ": '", sc.source, "' must be F32, got ", dtype_name(sc.dtype));
        s.scale = f32(w_name + "_scale", {out});
        break;
      }
      default:
        fail(where, ": tensor '", w.source, "' has dtype ", dtype_name(w.dtype), ", expected F32, F16, BF16 or I8");
    }
    MMKIT_CHECK(reinterpret_cast<uintptr_t>(s.w) % (s.kind == WeightKind::f32 ? 4 : s.kind == WeightKind::int8 ? 1 : 2) == 0,
                where, ": tensor '", w.source, "' is not aligned to its element size");
    if (!b_name.empty()) s.bias = f32(b_name, {out});
    return s;
  }
  // Rows [row0, row0 + rows) of a Linear (its weight rows, scales and bias): a view, nothing copied.
  static LinearSource slice_rows(const LinearSource& s, int64_t row0, int64_t rows, const std::string& name) {
    const size_t esize = s.kind == WeightKind::f32 ? 4 : s.kind == WeightKind::int8 ? 1 : 2;
    LinearSource r = s;
    r.name = name;
    r.out = rows;
    r.w = static_cast<const char*>(s.w) + size_t(row0 * s.in) * esize;
    if (s.scale) r.scale = s.scale + row0;
    if (s.bias) r.bias = s.bias + row0;
    r.release = nullptr;
    return r;
  }
  // Once packed, the mapped original is not needed in memory any more (f16 is read at every call).
  void set_release(LinearSource& s) const {
    if (!from_file || s.kind == WeightKind::f16) return;
    const size_t bytes = size_t(s.out * s.in) * (s.kind == WeightKind::f32 ? 4 : s.kind == WeightKind::int8 ? 1 : 2);
    const io::SafetensorsFile* f = file;
    const void* w = s.w;
    s.release = [f, w, bytes] { f->release_pages(w, bytes); };
  }
};

struct ClipEngine::Tower {
  struct Block {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    PackedLinear qkv, out, fc, proj;
  };
  int64_t width = 0, heads = 0, mlp = 0;  // mlp: the blocks' MLP hidden size
  float eps = 1e-5f;
  std::vector<Block> blocks;
  // vision: the last block's q and k/v rows of in_proj as two layers (run_last_block_cls)
  std::unique_ptr<PackedLinear> last_q, last_kv;
  // SigLIP's attention-pooling head (vision) and text head
  struct Head {
    std::vector<float> q;                  // probe's query [W], computed once at prepare time
    std::unique_ptr<PackedLinear> kv, out, fc, proj;
    const float *ln_w = nullptr, *ln_b = nullptr;
  };
  std::unique_ptr<Head> head;
  std::unique_ptr<PackedLinear> text_head;  // [E, Wt] + bias
  // vision
  std::unique_ptr<PackedLinear> patch;  // conv1 as [W, 3 p p]
  const float *cls = nullptr, *pos = nullptr, *ln_pre_w = nullptr, *ln_pre_b = nullptr;
  // both: final LayerNorm (ln_post / ln_final) and projection [W, E]
  const float *ln_out_w = nullptr, *ln_out_b = nullptr, *proj = nullptr;
  // text
  const void* tok = nullptr;  // token table [V, W], F32/F16/BF16
  DType tok_dtype = DType::f32;
};

ClipEngine::~ClipEngine() = default;

std::unique_ptr<ClipEngine> ClipEngine::open(const std::string& model_path) {
  const std::string path = resolve_model_file(model_path);
  std::unique_ptr<ClipEngine> e(new ClipEngine());
  e->path_ = path;
  e->file_ = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
  const auto& meta = e->file_->metadata();
  auto q = meta.find("mmkit.quantization");
  e->src_ = std::make_unique<Tensors>();
  Tensors& t = *e->src_;
  t.where = path;
  t.file = e->file_.get();
  const io::Layout layout = io::detect_layout(*e->file_);
  bool all_f32 = true;
  for (const auto& v : e->file_->tensors()) all_f32 = all_f32 && v.dtype == DType::f32;
  if (q != meta.end() || (layout == io::Layout::openai_clip && all_f32)) {
    // Read straight from the mapping: `mmkit quantize` output (always OpenAI names + config) or a
    // plain f32 OpenAI checkpoint.
    e->format_ = q != meta.end() ? q->second : "f32";
    MMKIT_CHECK(e->format_ == "f32" || e->format_ == "int8" || e->format_ == "f16" || e->format_ == "bf16", path,
                ": metadata 'mmkit.quantization' is '", e->format_, "', expected int8, f16 or bf16");
    MMKIT_CHECK(layout == io::Layout::openai_clip, path, ": a quantised CLIP file must use OpenAI tensor names");
    auto c = meta.find("config");
    MMKIT_CHECK(c != meta.end(), path, ": no 'config' in the safetensors metadata");
    e->cfg_ = ClipConfig::from_json(c->second);
    for (const auto& v : e->file_->tensors()) t.by_name[v.name] = {v.dtype, v.data, v.shape, v.name};
    t.from_file = true;
  } else if (layout == io::Layout::hf_clip || layout == io::Layout::hf_siglip) {
    // Hugging Face CLIP / SigLIP, read from the mapping as well: renamed views, nothing read or
    // copied here. When a tower is first used, its q/k/v are joined into one in_proj and CLIP's
    // projections transposed (owned copies of those tensors only), F16/BF16 tensors are widened one
    // by one, and each tensor is checked finite; the other tensors are read in place.
    std::string what;
    e->cfg_ = clip_config_of(*e->file_, layout, &what);
    t.where = what;
    e->format_ = "f32";
    io::RenamedViews rv = io::rename_views(*e->file_, layout);
    for (const auto& [name, v] : rv.views) t.by_name[name] = {v->dtype, v->data, v->shape, v->name};
    for (const std::string& u : rv.unused) {
      // A CLIP trained with the sigmoid loss: its [] logit_bias, which the CLIP rules leave unmatched.
      MMKIT_CHECK(u == "logit_bias" && !e->cfg_.siglip(), what, " does not match the model: unexpected tensor '", u, "'");
      const io::TensorView& v = e->file_->get(u);
      t.by_name[u] = {v.dtype, v.data, v.shape, v.name};
    }
    t.check_names(e->cfg_);
    t.from_file = true;
    t.widen = true;
  } else {
    // F16/BF16 OpenAI-layout files without quantisation metadata: load_clip widens.
    e->clip_ = load_clip(path);
    e->cfg_ = e->clip_->cfg;
    e->format_ = "f32";
    for (Parameter* p : e->clip_->parameters())  // with the logit bias when the model has one
      t.by_name[p->name] = {DType::f32, p->value.raw(), p->value.shape().vec(), p->name};
  }
  const std::vector<int64_t> scalar = e->cfg_.siglip() ? std::vector<int64_t>{1} : std::vector<int64_t>{};
  const auto& ls = t.get("logit_scale", scalar);
  MMKIT_CHECK(ls.dtype == DType::f32 || ls.dtype == DType::f16 || ls.dtype == DType::bf16, path,
              ": 'logit_scale' must be a float");
  e->logit_scale_ = t.f32("logit_scale", scalar)[0];
  MMKIT_CHECK(!e->cfg_.siglip() || t.by_name.count("logit_bias"), path, ": a SigLIP model needs 'logit_bias'");
  if (t.by_name.count("logit_bias")) {  // SigLIP [1]; a sigmoid-loss CLIP []
    e->has_logit_bias_ = true;
    e->logit_bias_ = t.f32("logit_bias", scalar)[0];
  }
  return e;
}

void ClipEngine::prepare_vision() {
  if (vision_) return;
  Tensors& t = *src_;
  const ClipConfig& c = cfg_;
  auto v = std::make_unique<Tower>();
  const int64_t W = c.vision_width, p = c.vision_patch_size, E = c.embed_dim, Fv = c.vision_mlp_dim();
  const bool sig = c.siglip();
  v->width = W;
  v->mlp = Fv;
  v->heads = c.vision_heads;
  v->eps = c.eps;
  {
    // conv1 [W, 3, p, p] is the GEMM matrix [W, 3 p p] (see ops/patch_embed.h); no bias.
    const auto& e = t.get("visual.conv1.weight", {W, 3, p, p});
    t.by_name["visual.conv1.weight#2d"] = {e.dtype, e.data, {W, 3 * p * p}, e.source};
    LinearSource s = t.linear("visual.conv1.weight#2d", sig ? "visual.conv1.bias" : "", W, 3 * p * p);
    t.set_release(s);
    v->patch = std::make_unique<PackedLinear>(s, Epilogue::none);
  }
  v->pos = t.f32("visual.positional_embedding", {c.vision_tokens(), W});
  if (!sig) {
    v->cls = t.f32("visual.class_embedding", {W});
    v->ln_pre_w = t.f32("visual.ln_pre.weight", {W});
    v->ln_pre_b = t.f32("visual.ln_pre.bias", {W});
    t.transpose_marked("visual.proj", W, E);
    v->proj = t.f32("visual.proj", {W, E});
  }
  v->ln_out_w = t.f32("visual.ln_post.weight", {W});
  v->ln_out_b = t.f32("visual.ln_post.bias", {W});
  const Epilogue act = activation_epilogue(c.activation);
  for (int64_t i = 0; i < c.vision_layers; ++i) {
    const std::string b = "visual.transformer.resblocks." + std::to_string(i);
    t.join_qkv(b, W);
    auto lin = [&](const std::string& w, const std::string& bias, int64_t out, int64_t in, Epilogue ep) {
      LinearSource s = t.linear(b + w, b + bias, out, in);
      t.set_release(s);
      return PackedLinear(s, ep);
    };
    if (i == c.vision_layers - 1 && !sig) {
      // Only the class tokens leave the last block (see run_last_block_cls): q for them alone,
      // k and v for every token. Both are row ranges of in_proj, packed as their own layers.
      LinearSource qkv = t.linear(b + ".attn.in_proj_weight", b + ".attn.in_proj_bias", 3 * W, W);
      LinearSource q = Tensors::slice_rows(qkv, 0, W, qkv.name + "[q]");
      LinearSource kv = Tensors::slice_rows(qkv, W, 2 * W, qkv.name + "[kv]");
      t.set_release(kv);  // the k/v rows, as one range (the q rows are a small page range)
      v->last_q = std::make_unique<PackedLinear>(q, Epilogue::none);
      v->last_kv = std::make_unique<PackedLinear>(kv, Epilogue::none);
    }
    v->blocks.push_back({t.f32(b + ".ln_1.weight", {W}), t.f32(b + ".ln_1.bias", {W}),
                         t.f32(b + ".ln_2.weight", {W}), t.f32(b + ".ln_2.bias", {W}),
                         lin(".attn.in_proj_weight", ".attn.in_proj_bias", 3 * W, W, Epilogue::none),
                         lin(".attn.out_proj.weight", ".attn.out_proj.bias", W, W, Epilogue::residual),
                         lin(".mlp.c_fc.weight", ".mlp.c_fc.bias", Fv, W, act),
                         lin(".mlp.c_proj.weight", ".mlp.c_proj.bias", W, Fv, Epilogue::residual)});
  }
  if (sig) prepare_siglip_head(*v);
  vision_ = std::move(v);
}

// SigLIP's attention-pooling head (nn/attention_pool.h): the probe's query is the same for every
// image, so it is computed here once; k/v, out_proj and the MLP are packed like a block's layers.
void ClipEngine::prepare_siglip_head(Tower& v) {
  Tensors& t = *src_;
  const int64_t W = cfg_.vision_width, F = cfg_.vision_mlp_dim();
  auto h = std::make_unique<Tower::Head>();
  LinearSource in = t.linear("visual.head.attn.in_proj_weight", "visual.head.attn.in_proj_bias", 3 * W, W);
  PackedLinear q(Tensors::slice_rows(in, 0, W, in.name + "[q]"), Epilogue::none);
  LinearSource kv = Tensors::slice_rows(in, W, 2 * W, in.name + "[kv]");
  t.set_release(kv);
  h->kv = std::make_unique<PackedLinear>(kv, Epilogue::none);
  h->q.resize(size_t(W));
  q.forward(t.f32("visual.head.probe", {1, 1, W}), 1, h->q.data(), scratch_);
  auto lin = [&](const std::string& n, int64_t out, int64_t inw, Epilogue ep) {
    LinearSource s = t.linear("visual.head." + n + ".weight", "visual.head." + n + ".bias", out, inw);
    t.set_release(s);
    return std::make_unique<PackedLinear>(s, ep);
  };
  h->out = lin("attn.out_proj", W, W, Epilogue::none);
  h->fc = lin("mlp.c_fc", F, W, activation_epilogue(cfg_.activation));
  h->proj = lin("mlp.c_proj", W, F, Epilogue::residual);
  h->ln_w = t.f32("visual.head.ln.weight", {W});
  h->ln_b = t.f32("visual.head.ln.bias", {W});
  v.head = std::move(h);
}

void ClipEngine::prepare_text() {
  if (text_) return;
  Tensors& t = *src_;
  const ClipConfig& c = cfg_;
  auto v = std::make_unique<Tower>();
  const int64_t W = c.transformer_width, E = c.embed_dim, Ft = c.text_mlp_dim();
  v->width = W;
  v->mlp = Ft;
  v->heads = c.transformer_heads;
  v->eps = c.eps;
  const auto& tok = t.get("token_embedding.weight", {c.vocab_size, W});
  MMKIT_CHECK(tok.dtype == DType::f32 || tok.dtype == DType::f16 || tok.dtype == DType::bf16, t.where,
              ": 'token_embedding.weight' must be F32, F16 or BF16, got ", dtype_name(tok.dtype));
  MMKIT_CHECK(reinterpret_cast<uintptr_t>(tok.data) % dtype_size(tok.dtype) == 0, t.where,
              ": 'token_embedding.weight' is not aligned to its element size");
  v->tok = tok.data;
  v->tok_dtype = tok.dtype;
  // Rows are read (and half rows widened) on lookup; the table is checked once here, as every
  // loader refuses non-finite weights.
  if (t.from_file) t.check_finite(tok, c.vocab_size * W);
  v->pos = t.f32("positional_embedding", {c.context_length, W});
  v->ln_out_w = t.f32("ln_final.weight", {W});
  v->ln_out_b = t.f32("ln_final.bias", {W});
  if (c.siglip()) {
    LinearSource s = t.linear("text_head.weight", "text_head.bias", E, W);
    t.set_release(s);
    v->text_head = std::make_unique<PackedLinear>(s, Epilogue::none);
  } else {
    t.transpose_marked("text_projection", W, E);
    v->proj = t.f32("text_projection", {W, E});
  }
  const Epilogue act = activation_epilogue(c.activation);
  for (int64_t i = 0; i < c.transformer_layers; ++i) {
    const std::string b = "transformer.resblocks." + std::to_string(i);
    t.join_qkv(b, W);
    auto lin = [&](const std::string& w, const std::string& bias, int64_t out, int64_t in, Epilogue ep) {
      LinearSource s = t.linear(b + w, b + bias, out, in);
      t.set_release(s);
      return PackedLinear(s, ep);
    };
    v->blocks.push_back({t.f32(b + ".ln_1.weight", {W}), t.f32(b + ".ln_1.bias", {W}),
                         t.f32(b + ".ln_2.weight", {W}), t.f32(b + ".ln_2.bias", {W}),
                         lin(".attn.in_proj_weight", ".attn.in_proj_bias", 3 * W, W, Epilogue::none),
                         lin(".attn.out_proj.weight", ".attn.out_proj.bias", W, W, Epilogue::residual),
                         lin(".mlp.c_fc.weight", ".mlp.c_fc.bias", Ft, W, act),
                         lin(".mlp.c_proj.weight", ".mlp.c_proj.bias", W, Ft, Epilogue::residual)});
  }
  text_ = std::move(v);
}

// Pre-LN residual blocks on x_ [B*T, W]:
//   h = LN1(x); qkv = h Wqkv^T + b; h = attention(qkv); x += h Wo^T + bo;
//   h = LN2(x); f = act(h Wfc^T + bfc); x += f Wproj^T + bproj
void ClipEngine::run_blocks(Tower& t, int64_t B, int64_t T, bool causal, size_t n_blocks) {
  const int64_t M = B * T, W = t.width, H = t.heads, dh = W / H;
  float* x = x_.data();
  float* h = grow(h_, size_t(M * W));
  float* qkv = grow(qkv_, size_t(M * 3 * W));
  float* f = grow(f_, size_t(M * t.mlp));
  ops::AttentionDims d{B, H, T, T, dh, 3 * W, 3 * W, 3 * W, 1.f / std::sqrt(float(dh)), causal};
  for (size_t i = 0; i < n_blocks; ++i) {
    auto& blk = t.blocks[i];
    ops::layernorm_forward(x, blk.ln1_w, blk.ln1_b, h, nullptr, nullptr, M, W, t.eps);
    blk.qkv.forward(h, M, qkv, scratch_);
    ops::attention_forward(d, qkv, qkv + W, qkv + 2 * W, nullptr, h, nullptr);
    blk.out.forward(h, M, x, scratch_);
    ops::layernorm_forward(x, blk.ln2_w, blk.ln2_b, h, nullptr, nullptr, M, W, t.eps);
    blk.fc.forward(h, M, f, scratch_);
    blk.proj.forward(f, M, x, scratch_);
  }
}

// The image tower's last block, for the class tokens only. The pooled output reads token 0 of
// each image, so the other T - 1 rows of the last block's output are never used: their queries,
// attention rows, out-projection and MLP are skipped. Their keys and values are still computed,
// because the class token attends to every token. Exact (the class rows get the same arithmetic,
// row by row); it removes 10 of the block's 12 D^2 multiply-adds per skipped token, ~7% of
// ViT-B/32's FLOPs. x_ [B*T, W] in (after the other blocks); returns the class rows [B, W].
float* ClipEngine::run_last_block_cls(Tower& t, int64_t B, int64_t T) {
  const int64_t M = B * T, W = t.width, H = t.heads, dh = W / H;
  auto& blk = t.blocks.back();
  const float* x = x_.data();
  float* h = grow(h_, size_t(M * W));
  float* kv = grow(qkv_, size_t(M * 3 * W));
  float* f = grow(f_, size_t(std::max(M * 4 * W, B * 4 * W)));
  float* xc = grow(cls_, size_t(4 * B * W));  // class rows [B, W], then LN / q / attention [B, W] each
  float* hc = xc + B * W;
  float* qc = hc + B * W;
  float* ac = qc + B * W;
  ops::layernorm_forward(x, blk.ln1_w, blk.ln1_b, h, nullptr, nullptr, M, W, t.eps);
  t.last_kv->forward(h, M, kv, scratch_);  // [M, 2W]: k | v
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(xc + b * W, x + b * T * W, size_t(W) * 4);
    std::memcpy(hc + b * W, h + b * T * W, size_t(W) * 4);
  }
  t.last_q->forward(hc, B, qc, scratch_);
  ops::AttentionDims d{B, H, 1, T, dh, W, 2 * W, 2 * W, 1.f / std::sqrt(float(dh)), false};
  ops::attention_forward(d, qc, kv, kv + W, nullptr, ac, nullptr);
  blk.out.forward(ac, B, xc, scratch_);
  ops::layernorm_forward(xc, blk.ln2_w, blk.ln2_b, hc, nullptr, nullptr, B, W, t.eps);
  blk.fc.forward(hc, B, f, scratch_);
  blk.proj.forward(f, B, xc, scratch_);
  return xc;
}

void ClipEngine::encode_image(const float* images, int64_t B, float* out) {
  if (B == 0) return;
  prepare_vision();
  Tower& v = *vision_;
  const ClipConfig& c = cfg_;
  const int64_t R = c.image_resolution, p = c.vision_patch_size, W = c.vision_width, E = c.embed_dim;
  const int64_t P = (R / p) * (R / p), T = P + 1, M = B * T;
  float* x = grow(x_, size_t(M * W));
  // Patches [B*P, 3 p p] in the qkv buffer, their embeddings [B*P, W] in f.
  float* cols = grow(qkv_, size_t(std::max(B * P * 3 * p * p, M * 3 * W)));
  float* emb = grow(f_, size_t(std::max(B * P * W, M * std::max(v.mlp, 4 * W))));
  ops::patchify(images, cols, B, 3, R, R, p);
  v.patch->forward(cols, B * P, emb, scratch_);
  if (c.siglip()) {
    // SigLIP: x = patches + pos (no class token, no ln_pre); every block on every token;
    // ln_post on all of them, then the attention-pooling head.
    const int64_t Ms = B * P;
#pragma omp parallel for if (Ms * W > (1 << 14))
    for (int64_t r = 0; r < Ms; ++r) {
      const float* src = emb + r * W;
      const float* pos = v.pos + (r % P) * W;
      float* xr = x + r * W;
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) xr[j] = src[j] + pos[j];
    }
    run_blocks(v, B, P, false, v.blocks.size());
    run_siglip_head(v, B, P, out);
    return;
  }
  // x[b, 0] = class embedding + pos[0]; x[b, 1 + i] = patch i + pos[1 + i]; then ln_pre.
  float* h = grow(h_, size_t(M * W));
#pragma omp parallel for if (M * W > (1 << 14))
  for (int64_t r = 0; r < M; ++r) {
    const int64_t b = r / T, i = r % T;
    const float* src = i == 0 ? v.cls : emb + (b * P + i - 1) * W;
    const float* pos = v.pos + i * W;
    float* hr = h + r * W;
#pragma omp simd
    for (int64_t j = 0; j < W; ++j) hr[j] = src[j] + pos[j];
  }
  ops::layernorm_forward(h, v.ln_pre_w, v.ln_pre_b, x, nullptr, nullptr, M, W, v.eps);
  MMKIT_CHECK(!v.blocks.empty(), "CLIP: the image tower has no layers");
  run_blocks(v, B, T, false, v.blocks.size() - 1);
  const float* cls_rows = run_last_block_cls(v, B, T);
  // ln_post on the class tokens, then the projection [W, E].
  float* pooled = grow(pooled_, size_t(2 * B * W));
  std::memcpy(pooled, cls_rows, size_t(B * W) * 4);
  ops::layernorm_forward(pooled, v.ln_out_w, v.ln_out_b, pooled + B * W, nullptr, nullptr, B, W, v.eps);
  ops::gemm(false, false, B, E, W, 1.f, pooled + B * W, W, v.proj, E, 0.f, out, E);
}

// SigLIP's attention-pooling head on x_ [B*T, W] (after the blocks):
//   h = ln_post(x); kv = h Wkv^T + b [B*T, 2W]; a = attention(q (the probe's, every image), k, v)
//   [B, W]; y = a Wo^T + bo; y += mlp(ln(y)) -> out [B, W]
void ClipEngine::run_siglip_head(Tower& t, int64_t B, int64_t T, float* out) {
  const int64_t M = B * T, W = t.width, H = t.heads, dh = W / H, F = cfg_.vision_mlp_dim();
  const Tower::Head& hd = *t.head;
  float* h = grow(h_, size_t(M * W));
  float* kv = grow(qkv_, size_t(M * 3 * W));
  float* f = grow(f_, size_t(std::max(M * t.mlp, B * F)));
  float* qc = grow(cls_, size_t(3 * B * W));  // queries, attention output, LN output [B, W] each
  float* ac = qc + B * W;
  float* hc = ac + B * W;
  ops::layernorm_forward(x_.data(), t.ln_out_w, t.ln_out_b, h, nullptr, nullptr, M, W, t.eps);
  hd.kv->forward(h, M, kv, scratch_);  // [M, 2W]: k | v
  for (int64_t b = 0; b < B; ++b) std::memcpy(qc + b * W, hd.q.data(), size_t(W) * 4);
  ops::AttentionDims d{B, H, 1, T, dh, W, 2 * W, 2 * W, 1.f / std::sqrt(float(dh)), false};
  ops::attention_forward(d, qc, kv, kv + W, nullptr, ac, nullptr);
  hd.out->forward(ac, B, out, scratch_);
  ops::layernorm_forward(out, hd.ln_w, hd.ln_b, hc, nullptr, nullptr, B, W, t.eps);
  hd.fc->forward(hc, B, f, scratch_);
  hd.proj->forward(f, B, out, scratch_);  // residual: out += mlp
}

void ClipEngine::encode_text(const int32_t* ids, int64_t B, int64_t T, float* out) {
  if (B == 0) return;
  const ClipConfig& c = cfg_;
  MMKIT_CHECK(T >= 1 && T <= c.context_length, "CLIP: token rows of length ", T, ", the model's context is ",
              c.context_length);
  prepare_text();
  Tower& v = *text_;
  const int64_t W = c.transformer_width, E = c.embed_dim, V = c.vocab_size;
  for (int64_t r = 0; r < B * T; ++r)
    MMKIT_CHECK(ids[r] >= 0 && ids[r] < V, "CLIP: token id ", ids[r], " at row ", r / T, ", position ", r % T,
                " is outside the vocabulary [0, ", V, ")");
  // Pooling reads the end-of-text token (the highest id of each row). Under the causal mask no
  // token sees a later one, so positions after the last end-of-text of the batch cannot change the
  // result: the tower runs on the first Tu <= T positions only ("a photo of a cat." is 7 of 77).
  // SigLIP has no causal mask and pools at the last position: every position runs.
  std::vector<int64_t>& eot = eot_;
  eot.assign(size_t(B), c.siglip() ? T - 1 : 0);
  int64_t Tu = c.siglip() ? T : 1;
  for (int64_t b = 0; b < B && !c.siglip(); ++b) {
    for (int64_t t = 1; t < T; ++t)
      if (ids[b * T + t] > ids[b * T + eot[size_t(b)]]) eot[size_t(b)] = t;
    Tu = std::max(Tu, eot[size_t(b)] + 1);
  }
  const int64_t M = B * Tu;
  float* x = grow(x_, size_t(M * W));
#pragma omp parallel for if (M * W > (1 << 14))
  for (int64_t r = 0; r < M; ++r) {
    const int64_t b = r / Tu, t = r % Tu, id = ids[b * T + t];
    const float* pos = v.pos + t * W;
    float* xr = x + r * W;
    if (v.tok_dtype == DType::f32) {
      const float* e = static_cast<const float*>(v.tok) + id * W;
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) xr[j] = e[j] + pos[j];
    } else {
      const uint16_t* e = static_cast<const uint16_t*>(v.tok) + id * W;
      for (int64_t j = 0; j < W; ++j)
        xr[j] = (v.tok_dtype == DType::f16 ? io::f16_to_f32(e[j]) : io::bf16_to_f32(e[j])) + pos[j];
    }
  }
  run_blocks(v, B, Tu, !c.siglip(), v.blocks.size());
  // ln_final on the pooled rows, then the projection (SigLIP: the text head, a Linear with bias).
  float* pooled = grow(pooled_, size_t(2 * B * W));
  for (int64_t b = 0; b < B; ++b) std::memcpy(pooled + b * W, x + (b * Tu + eot[size_t(b)]) * W, size_t(W) * 4);
  ops::layernorm_forward(pooled, v.ln_out_w, v.ln_out_b, pooled + B * W, nullptr, nullptr, B, W, v.eps);
  if (v.text_head)
    v.text_head->forward(pooled + B * W, B, out, scratch_);
  else
    ops::gemm(false, false, B, E, W, 1.f, pooled + B * W, W, v.proj, E, 0.f, out, E);
}

size_t ClipEngine::workspace_bytes() const {
  return 4 * (x_.size() + h_.size() + qkv_.size() + f_.size() + pooled_.size() + cls_.size()) + scratch_.xq.size() +
         4 * scratch_.xs.size() + 4 * scratch_.acc.size() + 2 * scratch_.xh.size() + 4 * scratch_.wf.size() +
         4 * (scratch_.xp.size() + scratch_.yp.size());
}

size_t ClipEngine::packed_weight_bytes() const {
  size_t n = 0;
  for (const Tower* t : {vision_.get(), text_.get()}) {
    if (!t) continue;
    if (t->patch) n += t->patch->packed_bytes();
    if (t->last_q) n += t->last_q->packed_bytes() + t->last_kv->packed_bytes();
    if (t->text_head) n += t->text_head->packed_bytes();
    if (t->head)
      n += t->head->kv->packed_bytes() + t->head->out->packed_bytes() + t->head->fc->packed_bytes() +
           t->head->proj->packed_bytes();
    for (const auto& b : t->blocks)
      n += b.qkv.packed_bytes() + b.out.packed_bytes() + b.fc.packed_bytes() + b.proj.packed_bytes();
  }
  return n;
}

}  // namespace mmkit::infer
