// CLIP towers against the reference implementation's outputs in
// ../shared/reference/clip_tiny (OpenAI CLIP code, random perturbed weights):
// text embeddings from the reference token ids, logit scale. Tolerances from
// the reference README: cosine >= 0.9999 and max abs diff <= 1e-3.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/models/clip.h"
#include "test_util.h"

using namespace mmkit;

namespace {

std::string ref_dir() { return std::string(MMKIT_SOURCE_DIR) + "/../shared/reference/clip_tiny"; }

#define REQUIRE_REFERENCE()                                                                 \
  if (!test::file_exists(ref_dir() + "/clip_tiny_f32.safetensors"))                          \
  GTEST_SKIP() << "../shared/reference/clip_tiny not present; CLIP parity cases skipped"

nlohmann::json ref_json() {
  std::ifstream f(ref_dir() + "/clip_tiny_f32.json");
  return nlohmann::json::parse(f);
}

void expect_rows_match(const std::string& what, const float* got, const nlohmann::json& want,
                       int64_t E) {
  for (size_t r = 0; r < want.size(); ++r) {
    double dot = 0, na = 0, nb = 0, max_abs = 0;
    for (int64_t e = 0; e < E; ++e) {
      double a = got[r * E + e], b = want[r][e].get<double>();
      dot += a * b;
      na += a * a;
      nb += b * b;
      max_abs = std::max(max_abs, std::fabs(a - b));
    }
    double cos = dot / std::sqrt(na * nb);
    EXPECT_GE(cos, 0.9999) << what << " row " << r;
    EXPECT_LE(max_abs, 1e-3) << what << " row " << r << " (cosine " << cos << ")";
  }
}

}  // namespace

TEST(ClipParity, TextEmbeddingsFromReferenceTokenIds) {
  REQUIRE_REFERENCE();
  auto clip = load_clip(ref_dir() + "/clip_tiny_f32.safetensors");
  nlohmann::json ref = ref_json();
  const auto& ids_json = ref["token_ids"];
  const int64_t B = int64_t(ids_json.size()), T = 77, E = clip->cfg.embed_dim;
  Tensor ids = Tensor::empty(Shape{B, T}, DType::i32);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) ids.ptr<int32_t>()[b * T + t] = ids_json[b][t].get<int32_t>();
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var txt = clip_encode_text(g, *clip, ids);
  expect_rows_match("text_embeddings", g.data(txt), ref["text_embeddings"], E);
  EXPECT_NEAR(clip->logit_scale.value.f32()[0], ref["logit_scale"].get<double>(), 1e-6);
}

TEST(ClipParity, MissingHeadCountsAreAnError) {
  try {
    ClipConfig::from_json(R"({"embed_dim": 64, "image_resolution": 64, "vision_layers": 2,
      "vision_width": 64, "vision_patch_size": 16, "context_length": 77, "vocab_size": 49408,
      "transformer_width": 64, "transformer_layers": 2, "transformer_heads": 2})");
    FAIL() << "config without vision_heads accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vision_heads"), std::string::npos) << e.what();
  }
}

// Full pipeline: decode -> CLIP preprocessing -> vision tower, tokenizer ->
// text tower, zero-shot probabilities; all against the reference outputs.
TEST(ClipParity, ImagesTextsAndZeroShotEndToEnd) {
  REQUIRE_REFERENCE();
  std::string vocab = std::string(MMKIT_SOURCE_DIR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!test::file_exists(vocab)) GTEST_SKIP() << "../shared/clip merges file not present";
  ClipRunner r = ClipRunner::open(ref_dir() + "/clip_tiny_f32.safetensors", vocab);
  nlohmann::json ref = ref_json();
  std::vector<Image> images;
  for (auto& name : ref["images"])
    images.push_back(decode_image_file(ref_dir() + "/../inputs/" + name.get<std::string>()));
  const int64_t E = r.model().cfg.embed_dim;
  Tensor img = r.embed_images(images, false);
  expect_rows_match("image_embeddings", img.f32(), ref["image_embeddings"], E);
  Tensor img_n = r.embed_images(images, true);
  expect_rows_match("image_embeddings_normalized", img_n.f32(), ref["image_embeddings_normalized"], E);
  std::vector<std::string> texts;
  for (auto& t : ref["texts"]) texts.push_back(t.get<std::string>());
  Tensor txt = r.embed_texts(texts, false);
  expect_rows_match("text_embeddings (tokenized here)", txt.f32(), ref["text_embeddings"], E);
  std::vector<std::string> labels;
  for (auto& l : ref["zeroshot_labels"]) labels.push_back(l.get<std::string>());
  ZeroShotResult z = r.zero_shot(images, labels, {"a photo of a {}."});
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t l = 0; l < labels.size(); ++l)
      EXPECT_NEAR(z.probs[i][l], ref["probs"][i][l].get<double>(), 1e-4) << "image " << i << " label " << l;
}

// The reference checkpoint rewritten with transformers' CLIPModel names (q/k/v split, projections
// stored as nn.Linear), as (name, tensor) pairs in the file's order.
static std::vector<std::pair<std::string, Tensor>> hf_clip_tensors() {
  io::SafetensorsFile src = io::SafetensorsFile::open(ref_dir() + "/clip_tiny_f32.safetensors");
  std::vector<std::pair<std::string, Tensor>> out;
  auto rename = [](std::string n) {
    auto rep = [&](const std::string& a, const std::string& b) {
      size_t p = n.find(a);
      if (p != std::string::npos) n.replace(p, a.size(), b);
    };
    rep("visual.transformer.resblocks.", "vision_model.encoder.layers.");
    rep("transformer.resblocks.", "text_model.encoder.layers.");
    rep(".ln_1.", ".layer_norm1.");
    rep(".ln_2.", ".layer_norm2.");
    rep(".mlp.c_fc.", ".mlp.fc1.");
    rep(".mlp.c_proj.", ".mlp.fc2.");
    rep(".attn.out_proj.", ".self_attn.out_proj.");
    rep("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight");
    rep("visual.class_embedding", "vision_model.embeddings.class_embedding");
    rep("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight");
    rep("visual.ln_pre.", "vision_model.pre_layrnorm.");
    rep("visual.ln_post.", "vision_model.post_layernorm.");
    rep("token_embedding.weight", "text_model.embeddings.token_embedding.weight");
    if (n == "positional_embedding") n = "text_model.embeddings.position_embedding.weight";
    rep("ln_final.", "text_model.final_layer_norm.");
    return n;
  };
  for (const auto& t : src.tensors()) {
    Tensor x = io::read_tensor_f32(src, t.name);
    if (t.name.find("in_proj_") != std::string::npos) {
      std::string base = rename(t.name.substr(0, t.name.find("attn.in_proj_")));
      std::string kind = t.name.find("weight") != std::string::npos ? "weight" : "bias";
      int64_t rows = x.dim(0) / 3, per = x.numel() / 3;
      for (int i = 0; i < 3; ++i) {
        Shape s = x.shape();
        s[0] = rows;
        Tensor part = Tensor::empty(s);
        std::memcpy(part.raw(), x.f32() + i * per, size_t(per) * 4);
        out.push_back({base + "self_attn." + "qkv"[i] + "_proj." + kind, part});
      }
    } else if (t.name == "visual.proj" || t.name == "text_projection") {
      Tensor tr = Tensor::empty(Shape{x.dim(1), x.dim(0)});
      for (int64_t i = 0; i < x.dim(0); ++i)
        for (int64_t j = 0; j < x.dim(1); ++j) tr.f32()[j * x.dim(0) + i] = x.f32()[i * x.dim(1) + j];
      out.push_back({t.name == "visual.proj" ? "visual_projection.weight" : "text_projection.weight", tr});
    } else {
      out.push_back({rename(t.name), x});
    }
  }
  return out;
}

static void write_hf_clip_config(const std::string& dir) {
  std::ofstream(dir + "/config.json") << R"({"projection_dim": 64,
    "text_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu"},
    "vision_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1,
                      "image_size": 64, "patch_size": 16, "hidden_act": "quick_gelu"}})";
}

static Tensor reference_token_ids(const nlohmann::json& ref) {
  const auto& ids_json = ref["token_ids"];
  const int64_t B = int64_t(ids_json.size()), T = 77;
  Tensor ids = Tensor::empty(Shape{B, T}, DType::i32);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) ids.ptr<int32_t>()[b * T + t] = ids_json[b][t].get<int32_t>();
  return ids;
}

// Hugging Face layout: the reference checkpoint rewritten with transformers'
// CLIPModel names plus a config.json must give the same embeddings.
TEST(ClipParity, HuggingFaceLayoutGivesTheSameEmbeddings) {
  REQUIRE_REFERENCE();
  std::vector<std::pair<std::string, Tensor>> out = hf_clip_tensors();
  std::string dir = test::make_temp_dir("hfclip");
  std::vector<io::TensorToWrite> w;
  for (auto& [n, t] : out) w.push_back({n, DType::f32, t.shape().vec(), t.raw()});
  io::write_safetensors(dir + "/model.safetensors", w);
  write_hf_clip_config(dir);
  auto clip = load_clip(dir + "/model.safetensors");
  nlohmann::json ref = ref_json();
  Tensor ids = reference_token_ids(ref);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  expect_rows_match("text_embeddings (HF layout)", g.data(clip_encode_text(g, *clip, ids)),
                    ref["text_embeddings"], clip->cfg.embed_dim);
  // A missing tensor is reported with the checkpoint's own name.
  w.pop_back();
  io::write_safetensors(dir + "/model.safetensors", w);
  try {
    load_clip(dir + "/model.safetensors");
    FAIL() << "incomplete checkpoint accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor"), std::string::npos) << e.what();
  }
}

// Issue #18, acceptance 1: files saved by transformers before v4.31 carry the buffers
// `{vision,text}_model.embeddings.position_ids` (I64 [1, n] = 0..n-1). Such a folder loads (graph
// and inference engine) and matches the reference embeddings; a buffer that is not 0..n-1 is
// refused with the tensor's name.
TEST(ClipParity, HuggingFaceLegacyPositionIdsAreAcceptedWhenTheyHoldZeroToNMinusOne) {
  REQUIRE_REFERENCE();
  std::vector<std::pair<std::string, Tensor>> out = hf_clip_tensors();
  std::vector<int64_t> text_pos(77), vision_pos(17);  // context 77; (64/16)^2 patches + class token
  for (size_t i = 0; i < text_pos.size(); ++i) text_pos[i] = int64_t(i);
  for (size_t i = 0; i < vision_pos.size(); ++i) vision_pos[i] = int64_t(i);
  std::vector<int32_t> vision_pos32(vision_pos.begin(), vision_pos.end());
  auto write = [&](const std::string& dir, DType vision_dtype) {
    std::vector<io::TensorToWrite> w;
    for (auto& [n, t] : out) w.push_back({n, DType::f32, t.shape().vec(), t.raw()});
    w.push_back({"text_model.embeddings.position_ids", DType::i64, {1, 77}, text_pos.data()});
    w.push_back({"vision_model.embeddings.position_ids", vision_dtype, {1, 17},
                 vision_dtype == DType::i64 ? static_cast<const void*>(vision_pos.data()) : vision_pos32.data()});
    io::write_safetensors(dir + "/model.safetensors", w);
    write_hf_clip_config(dir);
  };
  nlohmann::json ref = ref_json();
  std::string dir = test::make_temp_dir("hfclip_legacy");
  for (DType vd : {DType::i64, DType::i32}) {
    write(dir, vd);
    auto clip = load_clip(dir);
    Arena arena;
    Graph g(arena);
    g.grad_enabled = false;
    expect_rows_match("text_embeddings (HF layout + position_ids)", g.data(clip_encode_text(g, *clip, reference_token_ids(ref))),
                      ref["text_embeddings"], clip->cfg.embed_dim);
    ClipRunner r = ClipRunner::open(dir);
    std::vector<Image> images;
    for (auto& name : ref["images"]) images.push_back(decode_image_file(ref_dir() + "/../inputs/" + name.get<std::string>()));
    expect_rows_match("image_embeddings (HF layout + position_ids)", r.embed_images(images, false).f32(),
                      ref["image_embeddings"], clip->cfg.embed_dim);
  }
  // Not 0..n-1: refused, naming the tensor and the first wrong element.
  text_pos[5] = 6;
  write(dir, DType::i64);
  std::string err = test::error_of([&] { load_clip(dir); });
  EXPECT_NE(err.find("'text_model.embeddings.position_ids'"), std::string::npos) << err;
  EXPECT_NE(err.find("element 5 is 6"), std::string::npos) << err;
  err = test::error_of([&] { infer::ClipEngine::open(dir); });
  EXPECT_NE(err.find("'text_model.embeddings.position_ids'"), std::string::npos) << err;
  text_pos[5] = 5;
  // A buffer longer than the position table is refused too.
  vision_pos.push_back(17);
  std::vector<io::TensorToWrite> w;
  for (auto& [n, t] : out) w.push_back({n, DType::f32, t.shape().vec(), t.raw()});
  w.push_back({"vision_model.embeddings.position_ids", DType::i64, {1, 18}, vision_pos.data()});
  io::write_safetensors(dir + "/model.safetensors", w);
  err = test::error_of([&] { load_clip(dir); });
  EXPECT_NE(err.find("'vision_model.embeddings.position_ids' has 18 positions"), std::string::npos) << err;
  // Floats are not position ids.
  std::vector<float> vision_posf(17);
  for (size_t i = 0; i < vision_posf.size(); ++i) vision_posf[i] = float(i);
  w.back() = {"vision_model.embeddings.position_ids", DType::f32, {1, 17}, vision_posf.data()};
  io::write_safetensors(dir + "/model.safetensors", w);
  err = test::error_of([&] { load_clip(dir); });
  EXPECT_NE(err.find("'vision_model.embeddings.position_ids' must hold integers"), std::string::npos) << err;
}

// OpenAI's TorchScript state dicts carry `input_resolution`, `context_length` and `vocab_size`
// (clip/model.py build_model deletes them): accepted when they agree with the weights.
TEST(ClipParity, OpenAiLegacyScalarsAreCheckedAgainstTheWeights) {
  REQUIRE_REFERENCE();
  io::SafetensorsFile src = io::SafetensorsFile::open(ref_dir() + "/clip_tiny_f32.safetensors");
  int64_t res = 64, ctx = 77, vocab = 49408;
  std::string dir = test::make_temp_dir("openai_legacy");
  auto write = [&] {
    std::vector<io::TensorToWrite> w;
    for (const auto& t : src.tensors()) w.push_back({t.name, t.dtype, t.shape, t.data});
    w.push_back({"input_resolution", DType::i64, {}, &res});
    w.push_back({"context_length", DType::i64, {}, &ctx});
    w.push_back({"vocab_size", DType::i64, {}, &vocab});
    io::write_safetensors(dir + "/clip.safetensors", w, src.metadata());
  };
  write();
  nlohmann::json ref = ref_json();
  auto clip = load_clip(dir + "/clip.safetensors");
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  expect_rows_match("text_embeddings (OpenAI + legacy scalars)", g.data(clip_encode_text(g, *clip, reference_token_ids(ref))),
                    ref["text_embeddings"], clip->cfg.embed_dim);
  ctx = 76;
  write();
  std::string err = test::error_of([&] { load_clip(dir + "/clip.safetensors"); });
  EXPECT_NE(err.find("'context_length' is 76, but the weights say 77"), std::string::npos) << err;
}

// F16 and BF16 copies of the reference checkpoint (made here with mmkit's
// round-to-nearest-even conversion) against PyTorch run on the same rounded
// weights (tests/fixtures/clip_tiny_rounded.safetensors).
static void check_rounded_copy(DType dt, const std::string& tag) {
  io::SafetensorsFile src = io::SafetensorsFile::open(ref_dir() + "/clip_tiny_f32.safetensors");
  std::vector<std::vector<uint16_t>> bufs;
  std::vector<io::TensorToWrite> w;
  for (const auto& t : src.tensors()) {
    std::vector<float> v = io::to_f32(t);
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = dt == DType::f16 ? io::f32_to_f16(v[i]) : io::f32_to_bf16(v[i]);
    bufs.push_back(std::move(h));
  }
  size_t k = 0;
  for (const auto& t : src.tensors()) w.push_back({t.name, dt, t.shape, bufs[k++].data()});
  char tmpl[] = "/tmp/mmkit_rounded_XXXXXX";
  std::string path = std::string(mkdtemp(tmpl)) + "/clip_" + tag + ".safetensors";
  io::write_safetensors(path, w, src.metadata());
  std::string vocab = std::string(MMKIT_SOURCE_DIR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";
  ClipRunner r = ClipRunner::open(path, vocab);
  io::SafetensorsFile fx = io::SafetensorsFile::open(test::fixture("clip_tiny_rounded.safetensors"));
  nlohmann::json ref = ref_json();
  std::vector<Image> images;
  for (auto& name : ref["images"])
    images.push_back(decode_image_file(ref_dir() + "/../inputs/" + name.get<std::string>()));
  std::vector<std::string> texts;
  for (auto& t : ref["texts"]) texts.push_back(t.get<std::string>());
  const int64_t E = r.model().cfg.embed_dim;
  auto as_json = [](const Tensor& t) {
    nlohmann::json a = nlohmann::json::array();
    const int64_t C = t.shape()[-1];
    for (int64_t i = 0; i < t.numel() / C; ++i) a.push_back(std::vector<float>(t.f32() + i * C, t.f32() + (i + 1) * C));
    return a;
  };
  Tensor img = r.embed_images(images, false);
  expect_rows_match(tag + " image_embeddings", img.f32(), as_json(io::read_tensor_f32(fx, tag + ".image_embeddings")), E);
  Tensor txt = r.embed_texts(texts, false);
  expect_rows_match(tag + " text_embeddings", txt.f32(), as_json(io::read_tensor_f32(fx, tag + ".text_embeddings")), E);
  std::vector<std::string> labels;
  for (auto& l : ref["zeroshot_labels"]) labels.push_back(l.get<std::string>());
  ZeroShotResult z = r.zero_shot(images, labels, {"a photo of a {}."});
  Tensor probs = io::read_tensor_f32(fx, tag + ".probs");
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t l = 0; l < labels.size(); ++l)
      EXPECT_NEAR(z.probs[i][l], probs.f32()[i * labels.size() + l], 1e-3) << tag << " image " << i << " label " << l;
}

TEST(ClipParity, Float16CopyMatchesPyTorchOnRoundedWeights) {
  REQUIRE_REFERENCE();
  check_rounded_copy(DType::f16, "f16");
}

TEST(ClipParity, BFloat16CopyMatchesPyTorchOnRoundedWeights) {
  REQUIRE_REFERENCE();
  check_rounded_copy(DType::bf16, "bf16");
}
