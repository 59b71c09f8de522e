// CLIP towers against the reference implementation's outputs in
// ../shared/reference/clip_tiny (OpenAI CLIP code, random perturbed weights):
// text embeddings from the reference token ids, logit scale. Tolerances from
// the reference README: cosine >= 0.9999 and max abs diff <= 1e-3.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/eval/clip_runner.h"
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
