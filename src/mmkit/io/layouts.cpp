#include "mmkit/io/layouts.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "mmkit/io/checkpoint.h"

namespace mmkit::io {

namespace {

struct Rule {
  std::regex from;
  std::string to;  // regex_replace format ($1, $2, ...)
};

// torchvision.models.VisionTransformer -> mmkit Vit (models/vit.h)
const std::vector<Rule>& torchvision_vit_rules() {
  static const std::vector<Rule> r = {
      {std::regex(R"(^conv_proj\.(weight|bias)$)"), "patch_embed.$1"},
      {std::regex(R"(^class_token$)"), "cls_token"},
      {std::regex(R"(^encoder\.pos_embedding$)"), "pos_embed"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.(weight|bias)$)"), "encoder.layers.$1.norm1.$2"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.(weight|bias)$)"), "encoder.layers.$1.norm2.$2"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.(.+)$)"), "encoder.layers.$1.self_attn.$2"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.(weight|bias)$)"), "encoder.layers.$1.linear1.$2"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.(weight|bias)$)"), "encoder.layers.$1.linear2.$2"},
      {std::regex(R"(^encoder\.ln\.(weight|bias)$)"), "norm.$1"},
      {std::regex(R"(^heads\.head\.(weight|bias)$)"), "head.$1"},
  };
  return r;
}

// transformers ViTForImageClassification -> mmkit Vit. q/k/v are packed below.
const std::vector<Rule>& hf_vit_rules() {
  static const std::vector<Rule> r = {
      {std::regex(R"(^vit\.embeddings\.patch_embeddings\.projection\.(weight|bias)$)"), "patch_embed.$1"},
      {std::regex(R"(^vit\.embeddings\.cls_token$)"), "cls_token"},
      {std::regex(R"(^vit\.embeddings\.position_embeddings$)"), "pos_embed"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)$)"), "encoder.layers.$1.norm1.$2"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)$)"), "encoder.layers.$1.norm2.$2"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$)"), "encoder.layers.$1.self_attn.out_proj.$2"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$)"), "encoder.layers.$1.self_attn.$2.$3"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$)"), "encoder.layers.$1.linear1.$2"},
      {std::regex(R"(^vit\.encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)$)"), "encoder.layers.$1.linear2.$2"},
      {std::regex(R"(^vit\.layernorm\.(weight|bias)$)"), "norm.$1"},
      {std::regex(R"(^classifier\.(weight|bias)$)"), "head.$1"},
  };
  return r;
}

// transformers CLIPModel -> mmkit Clip (OpenAI names). q/k/v packed and the
// two projections transposed below.
// The encoder layers are named alike in transformers' CLIP and SigLIP towers (CLIPEncoderLayer,
// SiglipEncoderLayer): rules mapping `<hf>.encoder.layers.N.*` to mmkit's `<mm>.resblocks.N.*`.
// q/k/v stay apart here (joined into in_proj below).
std::vector<Rule> encoder_layer_rules(const std::string& hf, const std::string& mm) {
  const std::string from = "^" + hf + R"(\.encoder\.layers\.(\d+)\.)", to = mm + ".resblocks.$1.";
  return {
      {std::regex(from + R"(layer_norm1\.(weight|bias)$)"), to + "ln_1.$2"},
      {std::regex(from + R"(layer_norm2\.(weight|bias)$)"), to + "ln_2.$2"},
      {std::regex(from + R"(mlp\.fc1\.(weight|bias)$)"), to + "mlp.c_fc.$2"},
      {std::regex(from + R"(mlp\.fc2\.(weight|bias)$)"), to + "mlp.c_proj.$2"},
      {std::regex(from + R"(self_attn\.out_proj\.(weight|bias)$)"), to + "attn.out_proj.$2"},
      {std::regex(from + R"(self_attn\.(q|k|v)_proj\.(weight|bias)$)"), to + "attn.$2.$3"},
  };
}

// Both towers' encoder layers appended to a table's tower-specific rules.
std::vector<Rule> with_encoder_layers(std::vector<Rule> r) {
  for (const auto& [hf, mm] : {std::pair<const char*, const char*>{"vision_model", "visual.transformer"},
                               std::pair<const char*, const char*>{"text_model", "transformer"}})
    for (Rule& x : encoder_layer_rules(hf, mm)) r.push_back(std::move(x));
  return r;
}

const std::vector<Rule>& hf_clip_rules() {
  static const std::vector<Rule> r = with_encoder_layers({
      {std::regex(R"(^vision_model\.embeddings\.patch_embedding\.weight$)"), "visual.conv1.weight"},
      {std::regex(R"(^vision_model\.embeddings\.class_embedding$)"), "visual.class_embedding"},
      {std::regex(R"(^vision_model\.embeddings\.position_embedding\.weight$)"), "visual.positional_embedding"},
      {std::regex(R"(^vision_model\.pre_layrnorm\.(weight|bias)$)"), "visual.ln_pre.$1"},
      {std::regex(R"(^vision_model\.post_layernorm\.(weight|bias)$)"), "visual.ln_post.$1"},
      {std::regex(R"(^text_model\.embeddings\.token_embedding\.weight$)"), "token_embedding.weight"},
      {std::regex(R"(^text_model\.embeddings\.position_embedding\.weight$)"), "positional_embedding"},
      {std::regex(R"(^text_model\.final_layer_norm\.(weight|bias)$)"), "ln_final.$1"},
      {std::regex(R"(^visual_projection\.weight$)"), "visual.proj.T"},
      {std::regex(R"(^text_projection\.weight$)"), "text_projection.T"},
      {std::regex(R"(^logit_scale$)"), "logit_scale"},
  });
  return r;
}

// transformers SiglipModel -> mmkit's SigLIP names (models/clip.h): the encoder layers are named
// as in CLIP; the vision tower has a patch bias, no class token or ln_pre, and the attention-pooling
// head (modeling_siglip.py SiglipMultiheadAttentionPoolingHead: `probe`, an nn.MultiheadAttention
// with packed in_proj, `layernorm`, `mlp`); the text tower ends in `head` (an nn.Linear, kept
// [out, in]). q/k/v packed below.
const std::vector<Rule>& hf_siglip_rules() {
  static const std::vector<Rule> r = with_encoder_layers({
      {std::regex(R"(^vision_model\.embeddings\.patch_embedding\.(weight|bias)$)"), "visual.conv1.$1"},
      {std::regex(R"(^vision_model\.embeddings\.position_embedding\.weight$)"), "visual.positional_embedding"},
      {std::regex(R"(^vision_model\.post_layernorm\.(weight|bias)$)"), "visual.ln_post.$1"},
      {std::regex(R"(^vision_model\.head\.probe$)"), "visual.head.probe"},
      {std::regex(R"(^vision_model\.head\.attention\.(in_proj_weight|in_proj_bias)$)"), "visual.head.attn.$1"},
      {std::regex(R"(^vision_model\.head\.attention\.out_proj\.(weight|bias)$)"), "visual.head.attn.out_proj.$1"},
      {std::regex(R"(^vision_model\.head\.layernorm\.(weight|bias)$)"), "visual.head.ln.$1"},
      {std::regex(R"(^vision_model\.head\.mlp\.fc1\.(weight|bias)$)"), "visual.head.mlp.c_fc.$1"},
      {std::regex(R"(^vision_model\.head\.mlp\.fc2\.(weight|bias)$)"), "visual.head.mlp.c_proj.$1"},
      {std::regex(R"(^text_model\.embeddings\.token_embedding\.weight$)"), "token_embedding.weight"},
      {std::regex(R"(^text_model\.embeddings\.position_embedding\.weight$)"), "positional_embedding"},
      {std::regex(R"(^text_model\.final_layer_norm\.(weight|bias)$)"), "ln_final.$1"},
      {std::regex(R"(^text_model\.head\.(weight|bias)$)"), "text_head.$1"},
      {std::regex(R"(^logit_(scale|bias)$)"), "logit_$1"},
  });
  return r;
}

Tensor as_f32(const std::shared_ptr<SafetensorsFile>& f, const TensorView& t) {
  if (t.dtype == DType::f32 && reinterpret_cast<uintptr_t>(t.data) % 4 == 0)
    return Tensor::view(const_cast<void*>(t.data), Shape(t.shape), DType::f32,
                        std::shared_ptr<void>(f, const_cast<void*>(t.data)));
  std::vector<float> v = to_f32(t);
  Tensor x = Tensor::empty(Shape(t.shape));
  std::memcpy(x.raw(), v.data(), v.size() * 4);
  return x;
}

// w[r, :] = q[r, :] * scale[r] for an I8 tensor q with its "<name>_scale" F32 [rows].
Tensor dequantize_s8(const SafetensorsFile& f, const TensorView& t) {
  const TensorView* s = f.find(t.name + "_scale");
  MMKIT_CHECK(s, f.path(), ": int8 tensor '", t.name, "' has no '", t.name, "_scale' (per-row scales)");
  MMKIT_CHECK(!t.shape.empty() && s->dtype == DType::f32 && s->shape == std::vector<int64_t>{t.shape[0]},
              f.path(), ": '", s->name, "' must be F32 [", t.shape.empty() ? 0 : t.shape[0], "], got ",
              dtype_name(s->dtype), " ", Shape(s->shape).str());
  std::vector<float> sc = to_f32(*s);
  Tensor out = Tensor::empty(Shape(t.shape));
  const int64_t rows = t.shape[0], cols = rows ? t.numel() / rows : 0;
  const int8_t* q = static_cast<const int8_t*>(t.data);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out.f32()[r * cols + c] = float(q[r * cols + c]) * sc[size_t(r)];
  return out;
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// Element i of an integer tensor (I8/U8/I32/I64) as int64; false for other dtypes.
bool integer_at(const TensorView& t, int64_t i, int64_t* out) {
  switch (t.dtype) {
    case DType::i8: *out = static_cast<const int8_t*>(t.data)[i]; return true;
    case DType::u8: *out = static_cast<const uint8_t*>(t.data)[i]; return true;
    case DType::i32: { int32_t v; std::memcpy(&v, static_cast<const char*>(t.data) + 4 * i, 4); *out = v; return true; }
    case DType::i64: { int64_t v; std::memcpy(&v, static_cast<const char*>(t.data) + 8 * i, 8); *out = v; return true; }
    default: return false;
  }
}

// Legacy buffers: tensors that published files carry but that hold no weights, because the saving
// release stored a buffer the model now builds itself. They are accepted only when they hold
// exactly what the model would build; anything else is an error naming the tensor.
//  - Hugging Face CLIP/SigLIP `{vision,text}_model.embeddings.position_ids` [1, n] = 0..n-1
//    (transformers made them non-persistent in v4.31; files saved before still have them, e.g.
//    openai/clip-vit-base-patch32). n must equal the rows of the tower's position_embedding.
//  - OpenAI CLIP's TorchScript state dict `input_resolution`, `context_length`, `vocab_size`
//    (scalars that clip/model.py build_model() deletes before load_state_dict); checked against
//    the shapes of the tensors they describe.
// Hugging Face ViT (ViTEmbeddings: position_embeddings is a Parameter) and torchvision's ViT register
// no buffers, so their files have no such extras.
// Returns true if `t` is such a buffer (and valid), false if it is not one.
bool check_legacy_buffer(const SafetensorsFile& f, const TensorView& t, Layout layout) {
  auto integers = [&](int64_t* first_bad, int64_t* bad_value, int64_t expect_from) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      int64_t v = 0;
      integer_at(t, i, &v);
      if (v != expect_from + i) {
        *first_bad = i;
        *bad_value = v;
        return false;
      }
    }
    return true;
  };
  auto rows_of = [&](const std::string& name) -> int64_t {
    const TensorView* w = f.find(name);
    return w && !w->shape.empty() ? w->shape[0] : -1;
  };
  const bool is_integer =
      t.dtype == DType::i8 || t.dtype == DType::u8 || t.dtype == DType::i32 || t.dtype == DType::i64;
  int64_t probe = 0;
  if (is_integer && t.numel() > 0) integer_at(t, 0, &probe);
  if (layout == Layout::hf_clip || layout == Layout::hf_siglip) {
    static const std::regex re(R"(^(vision_model|text_model)\.embeddings\.position_ids$)");
    std::smatch m;
    if (!std::regex_match(t.name, m, re)) return false;
    MMKIT_CHECK(is_integer, f.path(), ": legacy buffer '", t.name, "' must hold integers (0..n-1), got ",
                dtype_name(t.dtype));
    MMKIT_CHECK(t.shape.size() == 2 && t.shape[0] == 1, f.path(), ": legacy buffer '", t.name,
                "' must be [1, n], got ", Shape(t.shape).str());
    const int64_t n = t.shape[1], want = rows_of(m[1].str() + ".embeddings.position_embedding.weight");
    MMKIT_CHECK(want < 0 || n == want, f.path(), ": legacy buffer '", t.name, "' has ", n,
                " positions, but the position embedding has ", want, " rows");
    int64_t bad = 0, value = 0;
    MMKIT_CHECK(integers(&bad, &value, 0), f.path(), ": legacy buffer '", t.name, "' must hold 0..", n - 1,
                " (position ids), but element ", bad, " is ", value);
    return true;
  }
  if (layout == Layout::openai_clip) {
    int64_t want = -1;
    if (t.name == "context_length") {
      want = rows_of("positional_embedding");
    } else if (t.name == "vocab_size") {
      want = rows_of("token_embedding.weight");
    } else if (t.name == "input_resolution") {
      const TensorView* conv = f.find("visual.conv1.weight");
      const int64_t P = rows_of("visual.positional_embedding") - 1;
      const int64_t grid = P > 0 ? int64_t(std::llround(std::sqrt(double(P)))) : -1;
      if (conv && conv->shape.size() == 4 && grid > 0 && grid * grid == P) want = grid * conv->shape[3];
    } else {
      return false;
    }
    MMKIT_CHECK(is_integer && t.numel() == 1, f.path(), ": legacy tensor '", t.name,
                "' must be one integer, got ", dtype_name(t.dtype), " ", Shape(t.shape).str());
    MMKIT_CHECK(want < 0 || probe == want, f.path(), ": legacy tensor '", t.name, "' is ", probe,
                ", but the weights say ", want);
    return true;
  }
  return false;
}

// "<prefix>.{q,k,v}.{weight,bias}" (or query/key/value) -> packed
// "<prefix>.in_proj_{weight,bias}" in q, k, v row order.
void pack_qkv(Remapped& r) {
  std::map<std::string, std::vector<std::string>> groups;
  for (auto& [name, t] : r.tensors) {
    for (const char* part : {".q.", ".k.", ".v.", ".query.", ".key.", ".value."}) {
      size_t p = name.rfind(part);
      if (p == std::string::npos) continue;
      std::string kind = name.substr(p + std::strlen(part));  // weight | bias
      groups[name.substr(0, p) + ".in_proj_" + kind].push_back(name);
    }
  }
  for (auto& [packed, parts] : groups) {
    std::string base = packed.substr(0, packed.rfind(".in_proj_"));
    std::string kind = packed.substr(packed.rfind('_') + 1);
    std::vector<std::string> order;
    for (const char* n : {"q", "k", "v"})
      if (r.tensors.count(base + "." + n + "." + kind)) order.push_back(base + "." + n + "." + kind);
    if (order.size() != 3) {
      order.clear();
      for (const char* n : {"query", "key", "value"})
        if (r.tensors.count(base + "." + n + "." + kind)) order.push_back(base + "." + n + "." + kind);
    }
    if (order.size() != 3) continue;  // left unpacked: reported as unexpected
    const Tensor& q = r.tensors[order[0]];
    Shape s = q.shape();
    s[0] *= 3;
    Tensor out = Tensor::empty(s);
    for (int i = 0; i < 3; ++i) {
      const Tensor& t = r.tensors[order[size_t(i)]];
      MMKIT_CHECK(t.shape() == q.shape(), "checkpoint: ", r.source[order[size_t(i)]], " has shape ",
                  t.shape().str(), ", expected ", q.shape().str(), " like the other q/k/v tensors");
      std::memcpy(static_cast<char*>(out.raw()) + i * t.nbytes(), t.raw(), t.nbytes());
    }
    r.source[packed] = r.source[order[0]] + " (+ k, v)";
    for (auto& o : order) {
      r.tensors.erase(o);
      r.source.erase(o);
    }
    r.tensors[packed] = out;
  }
}

// "<name>.T" entries: stored as nn.Linear [out, in], mmkit wants [in, out].
void transpose_marked(Remapped& r) {
  std::vector<std::string> marked;
  for (auto& [name, t] : r.tensors)
    if (ends_with(name, ".T")) marked.push_back(name);
  for (auto& name : marked) {
    Tensor t = r.tensors[name];
    MMKIT_CHECK(t.ndim() == 2, "checkpoint: ", r.source[name], " should be a matrix, got ", t.shape().str());
    int64_t R = t.dim(0), C = t.dim(1);
    Tensor out = Tensor::empty(Shape{C, R});
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) out.f32()[j * R + i] = t.f32()[i * C + j];
    std::string plain = name.substr(0, name.size() - 2);
    r.tensors.erase(name);
    r.tensors[plain] = out;
    r.source[plain] = r.source[name] + " (transposed)";
    r.source.erase(name);
  }
}

}  // namespace

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::mmkit: return "mmkit";
    case Layout::openai_clip: return "OpenAI/OpenCLIP CLIP";
    case Layout::hf_clip: return "Hugging Face CLIPModel";
    case Layout::hf_siglip: return "Hugging Face SiglipModel";
    case Layout::torchvision_vit: return "torchvision VisionTransformer";
    case Layout::hf_vit: return "Hugging Face ViTForImageClassification";
  }
  return "?";
}

// Hugging Face CLIPModel and SiglipModel share their tower prefixes and encoder names. Tensors only
// one of them has tell them apart in either tower, so a file holding one tower only (a
// SiglipVisionModel or SiglipTextModel) is recognised too: SigLIP's attention-pooling head, the
// vision patch bias, the text head and a [1] logit_bias; CLIP's class token, pre_layrnorm and the two
// projections. (A CLIP trained with the sigmoid loss has a logit_bias too, but [] like logit_scale.)
bool hf_siglip_tensors(const SafetensorsFile& f) {
  const TensorView* bias = f.find("logit_bias");
  const bool siglip = f.find("vision_model.head.probe") || f.find("vision_model.embeddings.patch_embedding.bias") ||
                      f.find("text_model.head.weight") || (bias && bias->shape == std::vector<int64_t>{1});
  const bool clip = f.find("vision_model.embeddings.class_embedding") || f.find("vision_model.pre_layrnorm.weight") ||
                    f.find("visual_projection.weight") || f.find("text_projection.weight");
  return siglip && !clip;
}

Layout detect_layout(const SafetensorsFile& f) {
  if (f.find("visual.conv1.weight") || f.find("token_embedding.weight")) return Layout::openai_clip;
  if (f.find("vision_model.embeddings.patch_embedding.weight") ||
      f.find("text_model.embeddings.token_embedding.weight"))
    return hf_siglip_tensors(f) ? Layout::hf_siglip : Layout::hf_clip;
  if (f.find("conv_proj.weight")) return Layout::torchvision_vit;
  if (f.find("vit.embeddings.patch_embeddings.projection.weight")) return Layout::hf_vit;
  return Layout::mmkit;
}

HfTowers hf_towers(const SafetensorsFile& f) {
  HfTowers t;
  for (const TensorView& v : f.tensors()) {
    t.vision = t.vision || v.name.rfind("vision_model.", 0) == 0;
    t.text = t.text || v.name.rfind("text_model.", 0) == 0;
  }
  return t;
}

RenamedViews rename_views(const SafetensorsFile& f, Layout layout) {
  const std::vector<Rule>* rules = nullptr;
  if (layout == Layout::torchvision_vit) rules = &torchvision_vit_rules();
  if (layout == Layout::hf_vit) rules = &hf_vit_rules();
  if (layout == Layout::hf_clip) rules = &hf_clip_rules();
  if (layout == Layout::hf_siglip) rules = &hf_siglip_rules();
  RenamedViews r;
  for (const TensorView& t : f.tensors()) {
    if (t.name.rfind("optim.", 0) == 0) continue;  // optimizer state of a training checkpoint, not weights
    if (check_legacy_buffer(f, t, layout)) continue;
    std::string to = t.name;
    bool matched = rules == nullptr;
    if (rules)
      for (const Rule& rule : *rules)
        if (std::regex_match(t.name, rule.from)) {
          to = std::regex_replace(t.name, rule.from, rule.to);
          matched = true;
          break;
        }
    if (!matched) {
      r.unused.push_back(t.name);
      continue;
    }
    r.views[to] = &t;
  }
  return r;
}

Remapped remap(const std::shared_ptr<SafetensorsFile>& f, Layout layout) {
  RenamedViews v = rename_views(*f, layout);
  Remapped r;
  r.unused = std::move(v.unused);
  for (const auto& [to, t] : v.views) {
    // int8 files from `mmkit quantize`: "<w>" I8 [rows, ...] with "<w>_scale" F32 [rows]; the
    // training/graph path gets the dequantised f32 weight (infer::ClipEngine computes in int8).
    if (ends_with(t->name, "_scale")) {
      const TensorView* base = f->find(t->name.substr(0, t->name.size() - 6));
      if (base && base->dtype == DType::i8) continue;
    }
    r.tensors[to] = t->dtype == DType::i8 ? dequantize_s8(*f, *t) : as_f32(f, *t);
    r.source[to] = t->name;
  }
  pack_qkv(r);
  transpose_marked(r);
  return r;
}

void bind_remapped(const Remapped& r, const std::vector<Parameter*>& params, const std::string& what) {
  ProblemList problems;
  std::map<std::string, bool> used;
  for (Parameter* p : params) {
    auto it = r.tensors.find(p->name);
    if (it == r.tensors.end()) {
      problems.add("missing tensor for '" + p->name + "' (expected " + p->value.shape().str() + ")");
      continue;
    }
    used[p->name] = true;
    if (it->second.shape() != p->value.shape()) {
      problems.add("tensor '" + r.source.at(p->name) + "': got " + it->second.shape().str() + ", expected " +
                   p->value.shape().str());
    }
  }
  for (auto& [name, t] : r.tensors)
    if (!used.count(name)) {
      problems.add("unexpected tensor '" + r.source.at(name) + "' " + t.shape().str());
    }
  for (auto& name : r.unused) {
    problems.add("unexpected tensor '" + name + "'");
  }
  if (problems.count()) fail(what, " does not match the model ", problems.str());
  for (Parameter* p : params) {
    const Tensor& t = r.tensors.at(p->name);
    require_finite(t.f32(), size_t(t.numel()), r.source.at(p->name), t.shape(), what);
  }
  for (Parameter* p : params) {
    p->value = r.tensors.at(p->name);
    p->trainable = false;
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace mmkit::io
