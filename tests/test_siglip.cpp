// SigLIP (issue #18) against a PyTorch re-implementation of transformers' SiglipModel,
// SiglipTokenizer and SiglipImageProcessor: tests/fixtures/siglip_tiny/ (a Hugging Face SigLIP
// folder with a random tiny model and a SentencePiece model trained for it) and its references
// expected.safetensors, both from tools/fixtures/gen_siglip_fixture.py.
// Tolerances (acceptance 2): token ids and pixels exact; embeddings cosine >= 0.9999 and max abs
// diff <= 1e-3; sigmoid probabilities within 1e-3; the same for F16 / BF16 copies against PyTorch
// run on the rounded weights. The embedding and probability checks hold 2e-5 (kTight, below).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/infer/quantize.h"
#include "mmkit/io/layouts.h"
#include "mmkit/models/clip.h"
#include "mmkit/text/siglip_tokenizer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

std::string fx_dir() { return test::fixture("siglip_tiny"); }

struct Expected {
  io::SafetensorsFile file = io::SafetensorsFile::open(fx_dir() + "/expected.safetensors");
  std::vector<std::string> texts, labels;
  std::string templ;
  Expected() {
    for (auto& t : nlohmann::json::parse(file.metadata().at("texts"))) texts.push_back(t.get<std::string>());
    for (auto& t : nlohmann::json::parse(file.metadata().at("labels"))) labels.push_back(t.get<std::string>());
    templ = file.metadata().at("template");
  }
  Tensor f32(const std::string& name) const { return io::read_tensor_f32(file, name); }
  Tensor ids() const {  // texts.ids, I32 [N, 64]
    const io::TensorView& v = file.get("texts.ids");
    Tensor t = Tensor::empty(Shape(v.shape), DType::i32);
    std::memcpy(t.raw(), v.data, v.nbytes);
    return t;
  }
};

std::vector<Image> fixture_images() {
  std::vector<Image> out;
  for (int i = 0; i < 3; ++i) out.push_back(decode_image_file(fx_dir() + "/image_" + std::to_string(i) + ".png"));
  return out;
}

// Each row: cosine >= 0.9999 and max |diff| <= max_abs_tol; the worst element is named on failure.
// Acceptance 2 asks 1e-3; the parity tests hold kTight, because on this small model a wrong
// detail can stay under 1e-3 (GELU in its erf form instead of the tanh form moves the embeddings by
// 5e-4 and the probabilities by 3e-4), while the implementation matches to ~1e-6.
constexpr double kTight = 2e-5;
void expect_rows_match(const std::string& what, const float* got, const Tensor& want, double max_abs_tol = kTight) {
  const int64_t E = want.shape()[-1], N = want.numel() / E;
  double worst_cos = 1, worst_abs = 0;
  for (int64_t r = 0; r < N; ++r) {
    double dot = 0, na = 0, nb = 0, max_abs = 0;
    int64_t worst = 0;
    for (int64_t e = 0; e < E; ++e) {
      const double a = got[r * E + e], b = want.f32()[r * E + e];
      dot += a * b;
      na += a * a;
      nb += b * b;
      if (std::fabs(a - b) > max_abs) max_abs = std::fabs(a - b), worst = e;
    }
    const double cos = dot / std::sqrt(na * nb);
    worst_cos = std::min(worst_cos, cos);
    worst_abs = std::max(worst_abs, max_abs);
    EXPECT_GE(cos, 0.9999) << what << " row " << r;
    EXPECT_LE(max_abs, max_abs_tol) << what << " row " << r << ": worst element " << worst << " got " << got[r * E + worst]
                             << ", expected " << want.f32()[r * E + worst] << " (cosine " << cos << ")";
  }
  std::printf("  %s: %lld rows, lowest cosine %.7f, max |diff| %.2e\n", what.c_str(), (long long)N, worst_cos, worst_abs);
}

void expect_probs_match(const std::string& what, const ZeroShotResult& z, const Tensor& want) {
  const int64_t L = want.dim(1);
  double worst = 0;
  for (int64_t i = 0; i < want.dim(0); ++i)
    for (int64_t l = 0; l < L; ++l) {
      worst = std::max(worst, std::fabs(double(z.probs[size_t(i)][size_t(l)]) - want.f32()[i * L + l]));
      EXPECT_NEAR(z.probs[size_t(i)][size_t(l)], want.f32()[i * L + l], kTight) << what << " image " << i << " label " << l;
    }
  std::printf("  %s sigmoid probabilities: max |diff| %.2e\n", what.c_str(), worst);
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream(to, std::ios::binary) << in.rdbuf();
}

// A copy of the fixture folder in a fresh temporary directory, its tensors transformed by `edit`
// (name, view) -> written entries; config.json may be replaced.
std::string copy_folder(const std::string& tag, bool with_tokenizer = true) {
  std::string dir = test::make_temp_dir(tag);
  for (const char* f : {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"})
    copy_file(fx_dir() + "/" + f, dir + "/" + f);
  if (with_tokenizer) copy_file(fx_dir() + "/spiece.model", dir + "/spiece.model");
  return dir;
}

}  // namespace

TEST(Siglip, TokenIdsMatchTheTransformersTokenizer) {
  Expected ex;
  text::SiglipTokenizer tok = text::SiglipTokenizer::from_file(fx_dir() + "/spiece.model");
  EXPECT_EQ(tok.vocab_size(), 160);
  Tensor want = ex.ids();
  ASSERT_EQ(want.dim(0), int64_t(ex.texts.size()));
  for (size_t i = 0; i < ex.texts.size(); ++i) {
    std::vector<int32_t> got = tok.encode_padded(ex.texts[i], 64);
    ASSERT_EQ(got.size(), 64u);
    for (int64_t t = 0; t < 64; ++t)
      if (got[size_t(t)] != want.ptr<int32_t>()[int64_t(i) * 64 + t]) {
        ADD_FAILURE() << "text " << i << " '" << ex.texts[i] << "': first difference at position " << t << ": got "
                      << got[size_t(t)] << ", expected " << want.ptr<int32_t>()[int64_t(i) * 64 + t]
                      << " (canonical text '" << text::siglip_canonicalize(ex.texts[i]) << "')";
        break;
      }
  }
}

TEST(Siglip, PreprocessedPixelsAreBitIdenticalToPillow) {
  Expected ex;
  Tensor want = ex.f32("pixels");  // [3, 3, 32, 32]
  PreprocessConfig pre = preprocess_preset("siglip", 32);
  std::vector<Image> imgs = fixture_images();
  const int64_t per = 3 * 32 * 32;
  for (size_t i = 0; i < imgs.size(); ++i) {
    std::vector<float> got(static_cast<size_t>(per));
    preprocess_image(imgs[i], pre, got.data());
    int64_t diff = -1;
    for (int64_t k = 0; k < per && diff < 0; ++k)
      if (std::memcmp(&got[size_t(k)], want.f32() + int64_t(i) * per + k, 4) != 0) diff = k;
    EXPECT_EQ(diff, -1) << "image " << i << ": first differing value at " << diff << ": got "
                        << (diff >= 0 ? got[size_t(diff)] : 0.f) << ", expected "
                        << (diff >= 0 ? want.f32()[int64_t(i) * per + diff] : 0.f);
  }
}

// The autograd graph (models/clip.cpp) on the reference inputs.
TEST(Siglip, GraphEmbeddingsMatchPyTorch) {
  Expected ex;
  auto m = load_clip(fx_dir());
  ASSERT_TRUE(m->cfg.siglip());
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Tensor pixels = ex.f32("pixels");
  expect_rows_match("graph image_embeds", g.data(clip_encode_image(g, *m, g.constant(pixels))), ex.f32("f32.image_embeds"));
  Tensor ids = ex.ids();
  expect_rows_match("graph text_embeds", g.data(clip_encode_text(g, *m, ids)), ex.f32("f32.text_embeds"));
}

// Files in, answers out: the inference engine (pre-packed weights, fused epilogues) with the
// tokenizer and preprocessing the folder implies.
TEST(Siglip, EngineEmbeddingsAndSigmoidProbabilitiesMatchPyTorch) {
  Expected ex;
  ClipRunner r = ClipRunner::open(fx_dir());
  EXPECT_STREQ(r.probability_kind(), "sigmoid");
  std::vector<Image> imgs = fixture_images();
  expect_rows_match("engine image_embeds", r.embed_images(imgs, false).f32(), ex.f32("f32.image_embeds"));
  expect_rows_match("engine text_embeds", r.embed_texts(ex.texts, false).f32(), ex.f32("f32.text_embeds"));
  expect_probs_match("f32", r.zero_shot(imgs, ex.labels, {ex.templ}), ex.f32("f32.probs"));
}

static void check_rounded_copy(DType dt, const std::string& tag) {
  Expected ex;
  std::string dir = copy_folder("siglip_" + tag);
  io::SafetensorsFile src = io::SafetensorsFile::open(fx_dir() + "/model.safetensors");
  std::vector<std::vector<uint16_t>> bufs;
  for (const auto& t : src.tensors()) {
    std::vector<float> v = io::to_f32(t);
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = dt == DType::f16 ? io::f32_to_f16(v[i]) : io::f32_to_bf16(v[i]);
    bufs.push_back(std::move(h));
  }
  std::vector<io::TensorToWrite> w;
  size_t k = 0;
  for (const auto& t : src.tensors()) w.push_back({t.name, dt, t.shape, bufs[k++].data()});
  io::write_safetensors(dir + "/model.safetensors", w);
  ClipRunner r = ClipRunner::open(dir);
  std::vector<Image> imgs = fixture_images();
  expect_rows_match(tag + " image_embeds", r.embed_images(imgs, false).f32(), ex.f32(tag + ".image_embeds"));
  expect_rows_match(tag + " text_embeds", r.embed_texts(ex.texts, false).f32(), ex.f32(tag + ".text_embeds"));
  expect_probs_match(tag, r.zero_shot(imgs, ex.labels, {ex.templ}), ex.f32(tag + ".probs"));
}

TEST(Siglip, Float16CopyMatchesPyTorchOnRoundedWeights) { check_rounded_copy(DType::f16, "f16"); }
TEST(Siglip, BFloat16CopyMatchesPyTorchOnRoundedWeights) { check_rounded_copy(DType::bf16, "bf16"); }

// `mmkit quantize` of a SigLIP folder: bf16 stays within the rounded-weight references' reach of
// PyTorch f32, int8 close to it (no acceptance tolerance for int8; a loose check that it runs the
// same model), and the tokenizer comes along.
TEST(Siglip, QuantizedCopiesLoadWithTheirTokenizer) {
  Expected ex;
  std::string out = test::make_temp_dir("siglip_q");
  std::vector<Image> imgs = fixture_images();
  for (const char* to : {"int8", "bf16"}) {
    infer::QuantizeReport rep = infer::quantize_clip(fx_dir(), out + "/siglip_" + to + ".safetensors", to);
    EXPECT_FALSE(rep.tokenizer.empty()) << rep.tokenizer_problem;
    ClipRunner r = ClipRunner::open(out + "/siglip_" + std::string(to) + ".safetensors");
    ASSERT_TRUE(r.config().siglip());
    Tensor img = r.embed_images(imgs, true), want = ex.f32("f32.image_embeds");
    Tensor txt = r.embed_texts(ex.texts, true), want_t = ex.f32("f32.text_embeds");
    l2_normalize_rows(want);
    l2_normalize_rows(want_t);
    for (int64_t i = 0; i < img.numel(); ++i) EXPECT_NEAR(img.f32()[i], want.f32()[i], 0.05) << to << " image " << i;
    for (int64_t i = 0; i < txt.numel(); ++i) EXPECT_NEAR(txt.f32()[i], want_t.f32()[i], 0.05) << to << " text " << i;
  }
}

// Acceptance 5: a missing tokenizer, a config that does not match the tensors, a tokenizer of
// another vocabulary size: errors that name the file and the problem.
TEST(Siglip, BadFoldersGiveErrorsNamingTheFileAndProblem) {
  {
    std::string dir = copy_folder("siglip_notok", /*with_tokenizer=*/false);
    ClipRunner r = ClipRunner::open(dir);
    std::vector<Image> imgs = fixture_images();
    EXPECT_EQ(r.embed_images(imgs, false).dim(0), 3);  // images need no tokenizer
    std::string err = test::error_of([&] { r.embed_texts({"a cat"}, true); });
    EXPECT_NE(err.find(dir + "/spiece.model not found"), std::string::npos) << err;
  }
  {
    std::string dir = copy_folder("siglip_badcfg");
    std::string cfg = io::read_text_file(dir + "/config.json");
    const std::string from = "\"intermediate_size\": 48", to = "\"intermediate_size\": 64";
    ASSERT_NE(cfg.find(from), std::string::npos);
    cfg.replace(cfg.find(from), from.size(), to);
    std::ofstream(dir + "/config.json") << cfg;
    std::string err = test::error_of([&] { load_clip(dir); });
    EXPECT_NE(err.find(dir + "/config.json"), std::string::npos) << err;
    EXPECT_NE(err.find("vision_model.encoder.layers.0.mlp.fc1.weight"), std::string::npos) << err;
  }
  {
    // One more token-embedding row (and vocab_size) than spiece.model has pieces.
    std::string dir = copy_folder("siglip_vocab");
    io::SafetensorsFile src = io::SafetensorsFile::open(fx_dir() + "/model.safetensors");
    std::vector<float> tok;
    std::vector<io::TensorToWrite> w;
    for (const auto& t : src.tensors()) {
      if (t.name == "text_model.embeddings.token_embedding.weight") {
        tok = io::to_f32(t);
        tok.resize(tok.size() + size_t(t.shape[1]), 0.f);
        w.push_back({t.name, DType::f32, {t.shape[0] + 1, t.shape[1]}, tok.data()});
      } else {
        w.push_back({t.name, t.dtype, t.shape, t.data});
      }
    }
    io::write_safetensors(dir + "/model.safetensors", w);
    std::string cfg = io::read_text_file(dir + "/config.json");
    const std::string from = "\"vocab_size\": 160";
    ASSERT_NE(cfg.find(from), std::string::npos);
    cfg.replace(cfg.find(from), from.size(), "\"vocab_size\": 161");
    std::ofstream(dir + "/config.json") << cfg;
    ClipRunner r = ClipRunner::open(dir);
    std::string err = test::error_of([&] { r.embed_texts({"a cat"}, true); });
    EXPECT_NE(err.find(dir + "/spiece.model: the tokenizer has 160 pieces"), std::string::npos) << err;
    EXPECT_NE(err.find("161 rows"), std::string::npos) << err;
  }
  {
    std::string dir = copy_folder("siglip_junk_tok", false);
    std::ofstream(dir + "/spiece.model") << "not a model";
    std::string err = test::error_of([&] { text::SiglipTokenizer::from_file(dir + "/spiece.model"); });
    EXPECT_NE(err.find(dir + "/spiece.model: not a SentencePiece model"), std::string::npos) << err;
  }
}

// Legacy buffers in a SigLIP folder (as issue #18 asks for CLIP): accepted when 0..n-1.
TEST(Siglip, LegacyPositionIdsAreAccepted) {
  Expected ex;
  std::string dir = copy_folder("siglip_legacy");
  io::SafetensorsFile src = io::SafetensorsFile::open(fx_dir() + "/model.safetensors");
  std::vector<io::TensorToWrite> w;
  for (const auto& t : src.tensors()) w.push_back({t.name, t.dtype, t.shape, t.data});
  std::vector<int64_t> text_pos(64), vision_pos(16);
  for (size_t i = 0; i < 64; ++i) text_pos[i] = int64_t(i);
  for (size_t i = 0; i < 16; ++i) vision_pos[i] = int64_t(i);
  w.push_back({"text_model.embeddings.position_ids", DType::i64, {1, 64}, text_pos.data()});
  w.push_back({"vision_model.embeddings.position_ids", DType::i64, {1, 16}, vision_pos.data()});
  io::write_safetensors(dir + "/model.safetensors", w);
  ClipRunner r = ClipRunner::open(dir);
  expect_rows_match("legacy image_embeds", r.embed_images(fixture_images(), false).f32(), ex.f32("f32.image_embeds"));
  vision_pos[3] = 0;
  io::write_safetensors(dir + "/model.safetensors", w);
  std::string err = test::error_of([&] { load_clip(dir); });
  EXPECT_NE(err.find("'vision_model.embeddings.position_ids' must hold 0..15"), std::string::npos) << err;
}
