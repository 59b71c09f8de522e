// VQA building blocks: word tokenizer, answer vocabulary, soft scores, the
// VQA accuracy metric (hand-computed cases), the JSONL reader's errors,
// soft cross-entropy values, and the model's forward/batching invariants.
#include <gtest/gtest.h>

#include <tuple>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/core/error.h"
#include "mmkit/data/vqa_jsonl.h"
#include "mmkit/eval/vqa_accuracy.h"
#include "mmkit/infer/vqa_answer.h"
#include "mmkit/report/vqa_attention_map.h"
#include "mmkit/models/vqa.h"
#include "mmkit/text/word_tokenizer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

std::string temp_file(const std::string& content, const std::string& suffix = ".jsonl") {
  char tmpl[] = "/tmp/mmkit_vqa_XXXXXX";
  char* d = mkdtemp(tmpl);
  std::string p = std::string(d) + "/data" + suffix;
  std::ofstream(p) << content;
  return p;
}

}  // namespace

TEST(WordTokenizer, BuildsVocabularyAndEncodes) {
  auto tok = text::WordTokenizer::build({"What is the shape of the red object?", "Is the red object on the LEFT?"});
  // "the" (3x) first, then "object"/"red"/"is" (2x) by spelling, then the rest.
  ASSERT_GE(tok.size(), 5);
  EXPECT_EQ(tok.vocab()[0], "<pad>");
  EXPECT_EQ(tok.vocab()[1], "<cls>");
  EXPECT_EQ(tok.vocab()[2], "the");
  EXPECT_EQ(tok.vocab()[3], "is");
  EXPECT_EQ(tok.vocab()[4], "object");
  EXPECT_EQ(tok.size(), 2 + 9);  // what is the shape of red object on left
  auto ids = tok.encode("  is THE red object?? ");
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids[0], text::WordTokenizer::kCls);
  EXPECT_EQ(tok.vocab()[size_t(ids[1])], "is");
  EXPECT_EQ(tok.vocab()[size_t(ids[4])], "object");
  EXPECT_EQ(text::WordTokenizer::words("don't stop-me now!"), (std::vector<std::string>{"don't", "stop", "me", "now"}));
}

TEST(WordTokenizer, ClearErrors) {
  auto tok = text::WordTokenizer::build({"What is the shape of the red object?"});
  std::string e = test::error_of([&] { tok.encode("What is the colour of the red object?"); });
  EXPECT_NE(e.find("unknown word 'colour'"), std::string::npos) << e;
  e = test::error_of([&] { tok.encode(""); });
  EXPECT_NE(e.find("empty question"), std::string::npos) << e;
  e = test::error_of([&] { tok.encode("  ?!  "); });
  EXPECT_NE(e.find("empty question"), std::string::npos) << e;
  e = test::error_of([&] { tok.encode("what is the shape", 3); });
  EXPECT_NE(e.find("at most 2"), std::string::npos) << e;
  e = test::error_of([&] { tok.encode("what \xff is"); });
  EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
  EXPECT_THROW(text::WordTokenizer({"<pad>", "<cls>", "a", "a"}), Error);
  EXPECT_THROW(text::WordTokenizer({"a", "b"}), Error);
}

TEST(VqaAccuracy, HandComputed) {
  // min(#matches / 3, 1) with 10 annotators.
  std::vector<std::string> ten = {"2", "2", "2", "2", "3", "3", "two", "4", "2", "3"};
  EXPECT_FLOAT_EQ(vqa_accuracy("2", ten), 1.f);        // 5 say "2"
  EXPECT_FLOAT_EQ(vqa_accuracy("3", ten), 1.f);        // 3 say "3"
  EXPECT_FLOAT_EQ(vqa_accuracy("two", ten), 1.f / 3);  // 1
  EXPECT_FLOAT_EQ(vqa_accuracy("4", ten), 1.f / 3);
  EXPECT_FLOAT_EQ(vqa_accuracy("5", ten), 0.f);
  std::vector<std::string> five = {"yes", "yes", "no", "no", "no"};
  EXPECT_FLOAT_EQ(vqa_accuracy("yes", five), 2.f / 3);
  EXPECT_FLOAT_EQ(vqa_accuracy("no", five), 1.f);
  // Fewer than 3 annotators: all of them must agree for full credit.
  EXPECT_FLOAT_EQ(vqa_accuracy("circle", {"circle"}), 1.f);
  EXPECT_FLOAT_EQ(vqa_accuracy("square", {"circle"}), 0.f);
  EXPECT_FLOAT_EQ(vqa_accuracy("a", {"a", "b"}), 0.5f);
  EXPECT_FLOAT_EQ(vqa_accuracy("a", {}), 0.f);
}

TEST(AnswerVocab, TopKAndSoftScores) {
  std::vector<data::VqaExample> ex(3);
  ex[0].answers = {"yes", "yes", "no"};
  ex[1].answers = {"yes", "2"};
  ex[2].answers = {"no", "3", "3", "3"};
  AnswerVocab all = AnswerVocab::build(ex, 0);
  EXPECT_EQ(all.answers(), (std::vector<std::string>{"3", "yes", "no", "2"}));  // 3x,3x by spelling, 2x, 1x
  AnswerVocab top2 = AnswerVocab::build(ex, 2);
  EXPECT_EQ(top2.answers(), (std::vector<std::string>{"3", "yes"}));
  EXPECT_EQ(top2.index("no"), -1);
  std::vector<float> s(2);
  EXPECT_FLOAT_EQ(top2.soft_scores({"yes", "yes", "no"}, s.data()), 2.f / 3);
  EXPECT_FLOAT_EQ(s[0], 0.f);
  EXPECT_FLOAT_EQ(s[1], 2.f / 3);
  EXPECT_FLOAT_EQ(top2.soft_scores({"no", "2"}, s.data()), 0.f);  // unanswerable within the vocabulary
  EXPECT_THROW(AnswerVocab({"a", "a"}), Error);
}

TEST(SoftCrossEntropy, MatchesDirectComputation) {
  Arena arena;
  Graph g(arena);
  Tensor z = Tensor::from_vector(Shape{2, 3}, {1.f, 2.f, 3.f, 0.5f, -1.f, 0.f});
  Tensor t = Tensor::from_vector(Shape{2, 3}, {0.f, 0.25f, 0.75f, 1.f, 0.f, 0.f});
  Var loss = ag::soft_cross_entropy(g, g.leaf(z), t);
  auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
  double l0 = 0.25 * (lse(1, 2, 3) - 2) + 0.75 * (lse(1, 2, 3) - 3), l1 = lse(0.5, -1, 0) - 0.5;
  EXPECT_NEAR(g.data(loss)[0], (l0 + l1) / 2, 1e-6);
  // A one-hot target reduces to ordinary cross-entropy.
  Tensor y = Tensor::empty(Shape{1}, DType::i32);
  y.ptr<int32_t>()[0] = 0;
  Tensor z1 = Tensor::from_vector(Shape{1, 3}, {0.5f, -1.f, 0.f});
  Tensor t1 = Tensor::from_vector(Shape{1, 3}, {1.f, 0.f, 0.f});
  EXPECT_NEAR(g.data(ag::soft_cross_entropy(g, g.constant(z1), t1))[0],
              g.data(ag::cross_entropy(g, g.constant(z1), y))[0], 1e-6);
  Tensor bad = Tensor::from_vector(Shape{2, 3}, {0.f, -1.f, 0.f, 1.f, 0.f, 0.f});
  EXPECT_THROW(ag::soft_cross_entropy(g, g.constant(z), bad), Error);
}

TEST(VqaJsonl, ReadsAndResolvesPaths) {
  std::string p = temp_file(
      "{\"image\": \"images/a.png\", \"question\": \"Q1?\", \"answers\": [\"Yes \", \"no\"], \"type\": \"t\"}\n"
      "\n"
      "{\"image\": \"/abs/b.png\", \"question\": \"Q2?\", \"answers\": [\"2\"], \"relational\": true}\n");
  auto ex = data::read_vqa_jsonl(p);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].image, p.substr(0, p.rfind('/') + 1) + "images/a.png");
  EXPECT_EQ(ex[0].answers, (std::vector<std::string>{"yes", "no"}));
  EXPECT_EQ(ex[0].type, "t");
  EXPECT_EQ(ex[1].image, "/abs/b.png");
  EXPECT_TRUE(ex[1].relational);
  auto idx = data::index_images({ex[0], ex[1], ex[0]});
  EXPECT_EQ(idx.images.size(), 2u);
  EXPECT_EQ(idx.of_example, (std::vector<int32_t>{0, 1, 0}));
}

TEST(VqaJsonl, BadLinesNameFileAndLine) {
  struct Case {
    std::string line, expect;
  };
  std::vector<Case> cases = {
      {"{not json", "invalid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"question\": \"q\", \"answers\": [\"a\"]}", "missing field 'image'"},
      {"{\"image\": 3, \"question\": \"q\", \"answers\": [\"a\"]}", "field 'image' must be a string"},
      {"{\"image\": \"a.png\", \"question\": \"q\"}", "missing field 'answers'"},
      {"{\"image\": \"a.png\", \"question\": \"q\", \"answers\": []}", "field 'answers' is empty"},
      {"{\"image\": \"a.png\", \"question\": \"q\", \"answers\": [1]}", "array of strings"},
      {"{\"image\": \"a.png\", \"question\": \"q\", \"answers\": [\"  \"]}", "an answer is empty"},
      {"{\"image\": \"a.png\", \"question\": \"q\", \"answers\": [\"a\"], \"relational\": 1}", "'relational' must be a boolean"},
  };
  const std::string good = "{\"image\": \"a.png\", \"question\": \"q\", \"answers\": [\"a\"]}\n";
  for (auto& c : cases) {
    std::string p = temp_file(good + good + c.line + "\n");
    std::string e = test::error_of([&] { data::read_vqa_jsonl(p); });
    EXPECT_NE(e.find(p + ":3: "), std::string::npos) << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << e;
  }
  EXPECT_NE(test::error_of([] { data::read_vqa_jsonl("/nonexistent/x.jsonl"); }).find("cannot open"), std::string::npos);
  std::string empty = temp_file("\n\n");
  EXPECT_NE(test::error_of([&] { data::read_vqa_jsonl(empty); }).find("has no questions"), std::string::npos);
}

namespace {

VqaConfig tiny_config() {
  VqaConfig c;
  c.image_size = 12;
  c.patch_size = 6;
  c.stem_patch = 3;
  c.stem_dim = 4;
  c.dim = 8;
  c.heads = 2;
  c.mlp_dim = 16;
  c.vocab = text::WordTokenizer::build({"what shape is the red object", "is it left"}).vocab();
  c.answers = {"circle", "square", "left"};
  return c;
}

Image noise_image(int s, uint64_t seed) {
  Image im(s, s, 3);
  Rng r(seed);
  for (auto& p : im.pixels) p = uint8_t(r.randint(256));
  return im;
}

}  // namespace

TEST(VqaModel, SharedImageEncodingEqualsPerQuestionAndPaddingIsInert) {
  Vqa m;
  m.init(tiny_config(), 3);
  Image a = noise_image(12, 1), b = noise_image(12, 2);
  // Two images, three questions (two about image 1), padded to the longest.
  VqaBatch shared = make_vqa_batch(m, {a, b}, {1, 0, 1}, {"what shape is the red object", "is it left", "is it"});
  VqaBatch alone = make_vqa_batch(m, {b}, {0}, {"is it"});
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var l1 = vqa_forward(g, m, shared);
  Var l2 = vqa_forward(g, m, alone);
  ASSERT_EQ(g.shape(l1), (Shape{3, 3}));
  // Question 3 ("is it", padded to 7 tokens, image b via the index) equals the same question alone.
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(g.data(l1)[2 * 3 + k], g.data(l2)[k], 1e-5f);
  // A different image changes the answer scores.
  float diff = 0;
  for (int k = 0; k < 3; ++k) diff += std::fabs(g.data(l1)[k] - g.data(l1)[2 * 3 + k]);
  EXPECT_GT(diff, 0.f);
}

TEST(VqaModel, ConfigRoundTripAndErrors) {
  VqaConfig c = tiny_config();
  VqaConfig r = VqaConfig::from_json(c.to_json());
  EXPECT_EQ(r.to_json(), c.to_json());
  c.patch_size = 5;
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("not a multiple of patch_size"), std::string::npos);
  EXPECT_THROW(VqaConfig::from_json("{\"model\": \"vit\"}"), Error);
  EXPECT_THROW(VqaConfig::from_json("nope"), Error);
  Vqa m;
  m.init(tiny_config(), 0);
  EXPECT_NE(test::error_of([&] { make_vqa_batch(m, {noise_image(12, 1)}, {0}, {"is it blue"}); }).find("unknown word 'blue'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { make_vqa_batch(m, {noise_image(12, 1)}, {0}, {""}); }).find("empty question"),
            std::string::npos);
}

TEST(VqaModel, FilmConditionsTheImageOnTheQuestionAndOldConfigsHaveNone) {
  VqaConfig c = tiny_config();
  ASSERT_TRUE(c.film);
  Vqa m;
  m.init(c, 5);
  Image a = noise_image(12, 1);
  // The same image under two questions: with FiLM its image tokens differ per question.
  VqaBatch b = make_vqa_batch(m, {a}, {0, 0}, {"what shape is the red object", "is it left"});
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var q = ag::max_tokens(g, nn::embedding(g, m.word_embed, b.tokens), &b.pad);  // any [2, D] question vectors
  Var img = vqa_encode_image(g, m, g.constant(b.images), q, &b.image_index);
  ASSERT_EQ(g.shape(img), (Shape{2, c.num_patches(), c.dim}));
  const int64_t n = c.num_patches() * c.dim;
  float diff = 0;
  for (int64_t i = 0; i < n; ++i) diff += std::fabs(g.data(img)[i] - g.data(img)[n + i]);
  EXPECT_GT(diff, 1e-3f);
  // Without the question a FiLM encoder refuses to run.
  EXPECT_NE(test::error_of([&] { vqa_encode_image(g, m, g.constant(b.images)); }).find("needs the question"),
            std::string::npos);
  // A config written before FiLM existed (no "film" field) loads as film = false.
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j.erase("film");
  j.erase("image_pool");
  EXPECT_FALSE(VqaConfig::from_json(j.dump()).film);
  EXPECT_EQ(VqaConfig::from_json(j.dump()).image_pool, "mean");
  c.film = false;
  EXPECT_EQ(VqaConfig::from_json(c.to_json()).to_json(), c.to_json());
  c.film = true;
  c.stem_patch = 0;
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("film needs a conv stem"), std::string::npos);
}

namespace {

// The whole model's soft-target loss on b: its gradient with respect to p (autograd) against
// central finite differences, h = 1e-2, tolerance 1e-2 of the numeric gradient's scale.
void expect_gradient_matches_finite_differences(Vqa& m, const VqaBatch& b, const Tensor& targets, Parameter& p) {
  auto loss_of = [&]() {
    Arena arena;
    Graph g(arena);
    g.grad_enabled = false;
    return double(g.data(ag::soft_cross_entropy(g, vqa_forward(g, m, b), targets))[0]);
  };
  p.alloc_grad();
  std::fill(p.grad.f32(), p.grad.f32() + p.grad.numel(), 0.f);
  {
    Arena arena;
    Graph g(arena);
    g.backward(ag::soft_cross_entropy(g, vqa_forward(g, m, b), targets));
  }
  Tensor analytic = p.grad.clone(), numeric = Tensor::empty(p.value.shape());
  const float h = 1e-2f;
  for (int64_t i = 0; i < p.value.numel(); ++i) {
    const float orig = p.value.f32()[i];
    p.value.f32()[i] = orig + h;
    const double lp = loss_of();
    p.value.f32()[i] = orig - h;
    const double lm = loss_of();
    p.value.f32()[i] = orig;
    numeric.f32()[i] = float((lp - lm) / (2.0 * h));
  }
  ASSERT_GT(test::max_abs(numeric), 1e-5f) << p.name << ": the loss does not depend on it";
  EXPECT_TRUE(test::close(p.name, analytic, numeric, 1e-2f * test::max_abs(numeric) + 1e-4f, 1e-2f));
}

// The finite-difference check above for each of params, on three questions about two noise
// images (seeds image_seed, image_seed + 1), question q's target answer being answers[q].
void expect_gradients_match_finite_differences(Vqa& m, uint64_t image_seed, const int (&answers)[3],
                                               std::initializer_list<Parameter*> params) {
  VqaBatch b = make_vqa_batch(m, {noise_image(12, image_seed), noise_image(12, image_seed + 1)}, {0, 1, 1},
                              {"what shape is the red object", "is it left", "what is left"});
  Tensor targets = Tensor::zeros(Shape{3, 3});
  for (int q = 0; q < 3; ++q) targets.f32()[q * 3 + answers[q]] = 1.f;
  for (Parameter* p : params) expect_gradient_matches_finite_differences(m, b, targets, *p);
}

}  // namespace

// Finite differences of the whole model's loss with respect to the FiLM weights (the path
// question -> gamma/beta -> stem -> ... -> logits), against the autograd gradient.
TEST(VqaModel, FilmGradientsMatchFiniteDifferences) {
  Vqa m;
  m.init(tiny_config(), 7);
  expect_gradients_match_finite_differences(m, 3, {1, 2, 0},
                                            {&m.film_gamma.weight, &m.film_beta.weight, &m.film_gamma.bias});
}

// With relation_dim > 0 a relation network over the fused image tokens joins the head's input:
// stored in the config (older files: none), its output changes the answers, and its gradient
// through the whole model matches finite differences (its internals are checked against PyTorch
// in test_relation_parity.cpp).
TEST(VqaModel, RelationNetworkJoinsTheHead) {
  VqaConfig c = tiny_config();
  c.relation_dim = 16;  // wide enough that some ReLU of g is active for these random inputs
  c.relation_layers = 2;
  c.relation_heads = 2;
  c.relation_geometry = 3;
  c.relation_coords = true;
  VqaConfig r = VqaConfig::from_json(c.to_json());
  EXPECT_EQ(r.relation_dim, 16);
  EXPECT_EQ(r.relation_layers, 2);
  EXPECT_TRUE(r.relation_coords);
  EXPECT_EQ(r.relation_heads, c.relation_heads);
  EXPECT_EQ(r.relation_geometry, 3);
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j.erase("relation_dim");
  j.erase("relation_coords");
  j.erase("relation_heads");
  EXPECT_EQ(VqaConfig::from_json(j.dump()).relation_heads, 0);
  EXPECT_EQ(VqaConfig::from_json(j.dump()).relation_dim, 0);
  EXPECT_FALSE(VqaConfig::from_json(j.dump()).relation_coords);
  VqaConfig bad = c;
  bad.relation_layers = 0;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("relation_layers must be >= 1"), std::string::npos);

  Vqa m;
  m.init(c, 13);
  EXPECT_EQ(m.head_fc1.in_features(), 4 * c.dim);
  bool has_relation = false;
  for (Parameter* p : m.parameters()) has_relation |= p->name == "relation.g.1.weight";
  EXPECT_TRUE(has_relation);
  expect_gradients_match_finite_differences(m, 5, {0, 1, 2}, {&m.relation.out.weight});
}

// With hop_heads > 0 two-hop spatial attention over the stem cells joins the head's input (a
// fifth D block beside the relation network): stored in the config (older files: none), needs
// FiLM, and its gradient through the whole model — stem cells -> local features -> both hops ->
// head — matches finite differences (its internals are checked against PyTorch in
// test_hop_parity.cpp).
TEST(VqaModel, HopAttentionJoinsTheHead) {
  VqaConfig c = tiny_config();
  c.relation_dim = 8;
  c.hop_heads = 2;
  c.hop_channels = 3;
  VqaConfig r = VqaConfig::from_json(c.to_json());
  EXPECT_EQ(r.hop_heads, 2);
  EXPECT_EQ(r.hop_channels, 3);
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j.erase("hop_heads");
  j.erase("hop_channels");
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_heads, 0);
  VqaConfig bad = c;
  bad.film = false;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop attention on the FiLM cells (hop_cells film) needs film"),
            std::string::npos);
  bad = c;
  bad.hop_cells = "pixels";
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_cells must be film or image, got 'pixels'"),
            std::string::npos);
  bad = c;
  bad.hop_count = -2;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_count must be >= 0"), std::string::npos);
  bad = c;
  bad.hop_channels = 0;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_channels > 0"), std::string::npos);

  Vqa m;
  m.init(c, 11);
  EXPECT_EQ(m.head_fc1.in_features(), 5 * c.dim);
  bool has_hop = false;
  for (Parameter* p : m.parameters()) has_hop |= p->name == "hop.local2.weight";
  EXPECT_TRUE(has_hop);
  expect_gradients_match_finite_differences(m, 7, {2, 0, 1}, {&m.hop.local1.weight, &m.hop.beta, &m.hop.find.weight});
}

// hop_cells "image": no FiLM; the hop attention's local features and its count readout run once
// per image on the unconditioned stem cells and are gathered for the image's questions; hop 1's
// query comes from an attention over the word embeddings (hop_find_words). Stored in
// the config (older files: "film", no count); the gradient through the whole model matches
// finite differences (down to the stem, which feeds both the patch embedding and the hop cells),
// with two questions about the same image so the gathered rows' gradients are summed.
TEST(VqaModel, HopAttentionOnTheImagesOwnCells) {
  VqaConfig c = tiny_config();
  c.film = false;
  c.hop_heads = 2;
  c.hop_channels = 3;
  c.hop_cells = "image";
  c.hop_count = 4;
  c.hop_exclude = 1.f;
  c.hop_find_words = true;
  c.hop_dist_pool = true;
  c.hop_beta_scale = 8.f;
  c.hop_relate_scale = 4.f;
  c.image_pool = "mean";  // max pooling's switches would break the stem's finite differences
  VqaConfig r = VqaConfig::from_json(c.to_json());
  EXPECT_EQ(r.hop_cells, "image");
  EXPECT_EQ(r.hop_count, 4);
  EXPECT_EQ(r.hop_exclude, 1.f);
  EXPECT_TRUE(r.hop_find_words);
  EXPECT_TRUE(r.hop_dist_pool);
  EXPECT_EQ(r.hop_beta_scale, 8.f);
  EXPECT_EQ(r.hop_relate_scale, 4.f);
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j.erase("hop_cells");
  j.erase("hop_count");
  j.erase("hop_exclude");
  j.erase("hop_find_words");
  j.erase("hop_dist_pool");
  j.erase("hop_beta_scale");
  j.erase("hop_relate_scale");
  j["film"] = true;
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_cells, "film");
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_count, 0);
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_exclude, 0.f);
  EXPECT_FALSE(VqaConfig::from_json(j.dump()).hop_find_words);
  EXPECT_FALSE(VqaConfig::from_json(j.dump()).hop_dist_pool);
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_beta_scale, 32.f);
  EXPECT_EQ(VqaConfig::from_json(j.dump()).hop_relate_scale, 1.f);
  VqaConfig bad = c;
  bad.hop_exclude = -0.5f;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_exclude must be >= 0"), std::string::npos);
  bad = c;
  bad.hop_heads = 0;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_find_words needs hop attention"), std::string::npos);
  bad = c;
  bad.hop_count = 0;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_dist_pool needs hop attention with a count readout"),
            std::string::npos);
  bad = c;
  bad.hop_relate_scale = 0.f;
  EXPECT_NE(test::error_of([&] { bad.validate(); }).find("hop_beta_scale and hop_relate_scale must be > 0"),
            std::string::npos);
  // Wrong JSON types in a stored config name the field.
  for (auto [field, value, expected] :
       {std::tuple<const char*, nlohmann::json, const char*>{"hop_cells", 3, "'hop_cells' must be a string"},
        {"hop_find_words", "yes", "'hop_find_words' must be a boolean"},
        {"hop_dist_pool", 1, "'hop_dist_pool' must be a boolean"},
        {"hop_exclude", "1", "'hop_exclude' must be a number"},
        {"hop_beta_scale", nullptr, "'hop_beta_scale' must be a number"},
        {"hop_count", 1.5, "field 'hop_count' must be an integer"}}) {
    nlohmann::json bj = nlohmann::json::parse(c.to_json());
    bj[field] = value;
    EXPECT_NE(test::error_of([&] { VqaConfig::from_json(bj.dump()); }).find(expected), std::string::npos) << field;
  }

  {
    Vqa md;
    md.init(c, 13);
    EXPECT_EQ(md.hop.out.weight.value.shape(), Shape({c.dim, 2 * (2 + 2 * 3) + 4 + 2 * 2 * 4}));
  }
  // The distance pooling treats hop 1's point as a constant (a stop-gradient, as its PyTorch
  // reference in test_hop_parity.cpp does), which finite differences through the stem would see;
  // the whole-model check runs without it.
  c.hop_dist_pool = false;
  Vqa m;
  m.init(c, 13);
  EXPECT_EQ(m.head_fc1.in_features(), 4 * c.dim);
  EXPECT_EQ(m.hop.count.weight.value.shape(), Shape({4, 3}));
  EXPECT_EQ(m.hop.count_anchor.weight.value.shape(), Shape({4, 2 * 3}));
  EXPECT_EQ(m.hop.relate_count.weight.value.shape(), Shape({2, 4}));
  EXPECT_EQ(m.hop.out.weight.value.shape(), Shape({c.dim, 2 * (2 + 2 * 3) + 4}));
  // At this init the tiny model's hop 1 is nearly uniform and the loss moves by less than float's
  // resolution under a 1e-2 step of a word score; sharper queries and scores make that path
  // visible to finite differences (the function is the same).
  for (nn::Linear* l : {&m.hop.find, &m.hop_find_words})
    for (int64_t i = 0; i < l->weight.value.numel(); ++i) l->weight.value.f32()[i] *= 8.f;
  expect_gradients_match_finite_differences(m, 7, {2, 0, 1},
                                            {&m.hop.local1.weight, &m.hop.count.weight, &m.hop.count_anchor.weight,
                                             &m.hop.find.weight, &m.hop_find_words.weight, &m.stem.weight});
  // Not here, checked against PyTorch in test_hop_parity.cpp instead: hop.count_cond multiplies
  // the pooled question (|t| ~ 1-2), so a 1e-2 step moves the count cells' ReLUs across their
  // kinks; hop 2's weights (relate, relate_count) move this tiny model's loss by less than float's
  // resolution at that step (scaling relate by 3 moves the logits by ~6e-4).
}

// The attention maps of a hop-attention model: after the fusion layers, per head the find hop
// and the nearest / furthest hop over the stem cells, each a distribution over the cells, drawn
// with their labels.
TEST(VqaModel, HopAttentionMapsPerHead) {
  VqaConfig c = tiny_config();
  c.hop_heads = 2;
  c.hop_channels = 3;
  Vqa m;
  m.init(c, 12);
  std::vector<PatchAttention> maps;
  const Image img = noise_image(12, 9);
  answer_question(m, img, "what shape is the red object", &maps);
  ASSERT_EQ(maps.size(), size_t(c.fusion_layers + 4));
  const char* labels[4] = {"head 0: find", "head 0: nearest", "head 1: find", "head 1: furthest"};
  for (int k = 0; k < 4; ++k) {
    const PatchAttention& pa = maps[size_t(c.fusion_layers + k)];
    EXPECT_EQ(pa.label, labels[k]);
    EXPECT_EQ(pa.grid, 4);  // 12-px image, 3-px stem cells
    double s = 0;
    for (float v : pa.map) s += v;
    EXPECT_NEAR(s, 1.0, 1e-4) << pa.label;
  }
  std::string dir = test::make_temp_dir("hop_maps");
  write_attention_map(dir + "/att.png", img, maps, "what shape is the red object", "circle", 0.5f);
  Image att = decode_image_file(dir + "/att.png");
  EXPECT_GT(att.width, int(maps.size() + 1) * 12);
}
