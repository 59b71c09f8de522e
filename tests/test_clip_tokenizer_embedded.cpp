// A CLIP checkpoint that carries its own tokenizer (metadata "tokenizer.bpe_merges"): ClipRunner
// and the real `mmkit embed` / `mmkit tokenize` binaries use it without --vocab, it wins over
// vocabulary files beside the model, an explicit --vocab overrides it, and a corrupt entry is a
// clear error. The model is a tiny random CLIP written by the test.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/core/error.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"
#include "mmkit/text/bpe_trainer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

const std::string kMerges = std::string(MMKIT_SOURCE_DIR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";

const std::vector<std::string> kCaptions = {
    "a photo of a cat.", "a photo of a dog.",      "a blurry photo of a cat",  "a cat sitting on a mat",
    "a dog on the grass", "two cats and a dog",    "a photo of a red car.",    "a red car on the road",
    "a photo of a ship.", "a ship on the sea",     "a small cat, a big dog",   "photo of the sea at night"};

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Temporary directories, removed when the test program ends.
std::vector<std::string>& temp_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}
struct RemoveTempDirs : ::testing::Environment {
  void TearDown() override {
    for (const auto& d : temp_dirs()) std::filesystem::remove_all(d);
  }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new RemoveTempDirs);

std::string make_dir() {
  char tmpl[] = "/tmp/mmkit_tokemb_XXXXXX";
  const char* d = mkdtemp(tmpl);
  if (!d) throw std::runtime_error("mkdtemp failed");
  temp_dirs().push_back(d);
  return d;
}

ClipConfig tiny_config(int64_t vocab_size) {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 32;
  c.vision_patch_size = 8;
  c.vision_width = 32;
  c.vision_layers = 1;
  c.vision_heads = 2;
  c.context_length = 16;
  c.vocab_size = vocab_size;
  c.transformer_width = 32;
  c.transformer_layers = 1;
  c.transformer_heads = 2;
  return c;
}

// Writes a tiny random CLIP to dir/name with `meta` plus "config" as metadata.
std::string save_model(const std::string& dir, int64_t vocab_size, std::map<std::string, std::string> meta,
                       const std::string& name = "clip.safetensors") {
  ClipConfig c = tiny_config(vocab_size);
  Clip m;
  m.init(c, 3);
  meta["config"] = c.to_json();
  std::string path = dir + "/" + name;
  io::save_parameters(path, m.parameters(), meta);
  return path;
}

text::ClipTokenizer trained_tokenizer() {
  return text::ClipTokenizer::from_merges(text::train_bpe_merges(kCaptions, 60));
}

struct CliRun {
  int code;
  std::string out, err;
};

CliRun run_mmkit(const std::string& args, const std::string& dir) {
  std::string out_file = dir + "/stdout.txt", err_file = dir + "/stderr.txt";
  std::string cmd = "timeout 60 " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " > " + out_file +
                    " 2> " + err_file;
  int st = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 1000, slurp(out_file), slurp(err_file)};
}

}  // namespace

TEST(ClipTokenizerEmbedded, MetadataHelpers) {
  text::ClipTokenizer tok = trained_tokenizer();
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, tok);
  ASSERT_EQ(meta.count("tokenizer.bpe_merges"), 1u);
  EXPECT_EQ(meta["tokenizer.bpe_merges"], tok.merges_text());

  std::string dir = make_dir();
  std::string path = save_model(dir, tok.vocab_size(), meta);
  auto f = io::SafetensorsFile::open(path);
  auto back = tokenizer_from_metadata(f);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->merges(), tok.merges());
  EXPECT_EQ(back->vocab_size(), tok.vocab_size());

  std::string plain = save_model(dir, tok.vocab_size(), {}, "plain.safetensors");
  EXPECT_EQ(tokenizer_from_metadata(io::SafetensorsFile::open(plain)), nullptr);

  // Hugging Face files: in CLIP's id layout they embed; with ids in another order the merges
  // cannot reproduce them, and writing them would silently change the ids, so it throws.
  auto write_hf = [&](const std::string& sub, bool reversed) {
    std::string d = dir + "/" + sub;
    std::filesystem::create_directory(d);
    nlohmann::json v = nlohmann::json::object();
    for (int32_t id = 0; id < tok.vocab_size(); ++id)
      v[tok.token(id)] = reversed ? int32_t(tok.vocab_size()) - 1 - id : id;
    std::ofstream(d + "/vocab.json") << v.dump();
    std::ofstream m(d + "/merges.txt");
    m << "#version: 0.2\n";
    for (const auto& mg : tok.merges()) m << mg << "\n";
    m.close();
    return text::ClipTokenizer::from_hf_files(d + "/vocab.json", d + "/merges.txt");
  };
  std::map<std::string, std::string> hf_meta;
  set_tokenizer_metadata(hf_meta, write_hf("hf", false));
  EXPECT_EQ(hf_meta["tokenizer.bpe_merges"], tok.merges_text());
  text::ClipTokenizer reversed = write_hf("hf_reversed", true);
  EXPECT_EQ(reversed.encode("cat")[0], tok.vocab_size() - 1 - tok.encode("cat")[0]);
  std::string err = test::error_of([&] { set_tokenizer_metadata(hf_meta, reversed); });
  EXPECT_NE(err.find("layout"), std::string::npos) << err;
}

TEST(ClipTokenizerEmbedded, RunnerUsesEmbeddedTokenizer) {
  text::ClipTokenizer tok = trained_tokenizer();
  ASSERT_LT(tok.vocab_size(), 600);  // a small vocabulary: the point of training one
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, tok);
  std::string dir = make_dir();
  std::string path = save_model(dir, tok.vocab_size(), meta);
  // A broken vocabulary file beside the model: the embedded tokenizer must win without reading it.
  std::ofstream(dir + "/bpe_simple_vocab_16e6.txt.gz") << "not gzip";

  ClipRunner r = ClipRunner::open(path);
  std::vector<std::string> texts = {"a photo of a cat.", "a dog on a ship at night", "zebra \U0001f993!"};
  auto ids = r.tokenize(texts);
  ASSERT_EQ(ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(ids[i], tok.encode_padded(texts[i], 16)) << texts[i];
  Tensor e = r.embed_texts(texts, true);
  ASSERT_EQ(e.shape()[0], 3);
  ASSERT_EQ(e.shape()[1], 16);
  for (int64_t i = 0; i < 3; ++i) {
    double n = 0;
    for (int64_t j = 0; j < 16; ++j) n += double(e.f32()[i * 16 + j]) * e.f32()[i * 16 + j];
    EXPECT_NEAR(n, 1.0, 1e-4) << "row " << i;
  }
  // open_clip_tokenizer (used by `mmkit tokenize --model`) finds it too.
  EXPECT_EQ(open_clip_tokenizer("", path)->merges(), tok.merges());

  // Without the embedded tokenizer, the broken file beside the model is what gets read...
  std::string plain = save_model(dir, tok.vocab_size(), {}, "plain.safetensors");
  std::string err = test::error_of([&] { ClipRunner::open(plain).tokenize({"a cat"}); });
  EXPECT_NE(err.find("bpe_simple_vocab_16e6.txt.gz"), std::string::npos) << err;
  // ... and with nothing beside it, the error says what was looked for.
  std::string alone = save_model(make_dir(), tok.vocab_size(), {});
  err = test::error_of([&] { ClipRunner::open(alone).tokenize({"a cat"}); });
  EXPECT_NE(err.find("no CLIP vocabulary found"), std::string::npos) << err;
  EXPECT_NE(err.find("tokenizer.bpe_merges"), std::string::npos) << err;
}

TEST(ClipTokenizerEmbedded, CorruptMetadataIsAClearError) {
  std::string dir = make_dir();
  std::string path = save_model(dir, 600, {{"tokenizer.bpe_merges", "#version: mmkit-bpe 1\na b\nab zz\n"}});
  std::string err = test::error_of([&] { ClipRunner::open(path).tokenize({"a cat"}); });
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("tokenizer.bpe_merges"), std::string::npos) << err;
  EXPECT_NE(err.find("line 3"), std::string::npos) << err;
  // Image-only work does not need the tokenizer, so it still loads.
  EXPECT_NO_THROW(ClipRunner::open(path));

  std::string path2 = save_model(make_dir(), 600, {{"tokenizer.bpe_merges", "{\"not\": \"merges\"}"}});
  err = test::error_of([&] { tokenizer_from_metadata(io::SafetensorsFile::open(path2)); });
  EXPECT_NE(err.find("first line"), std::string::npos) << err;

  CliRun run = run_mmkit("embed --model " + path + " --text 'a cat'", dir);
  EXPECT_EQ(run.code, 1) << run.err;
  EXPECT_NE(run.err.find("tokenizer.bpe_merges"), std::string::npos) << run.err;
}

TEST(ClipTokenizerEmbedded, TokenizerLargerThanModelIsAClearError) {
  text::ClipTokenizer tok = trained_tokenizer();
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, tok);
  std::string path = save_model(make_dir(), tok.vocab_size() - 1, meta);
  std::string err = test::error_of([&] { ClipRunner::open(path).tokenize({"a cat"}); });
  EXPECT_NE(err.find("token embedding"), std::string::npos) << err;
}

TEST(ClipTokenizerEmbedded, BinaryWorksWithoutVocab) {
  if (!exists(std::string(MMKIT_BINARY_DIR) + "/mmkit")) GTEST_SKIP() << "mmkit binary not built";
  text::ClipTokenizer tok = trained_tokenizer();
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, tok);
  std::string dir = make_dir();
  std::string path = save_model(dir, tok.vocab_size(), meta);

  CliRun run = run_mmkit("embed --model " + path + " --text 'a photo of a dog.' --text 'two cats' --json", dir);
  ASSERT_EQ(run.code, 0) << run.err;
  nlohmann::json j = nlohmann::json::parse(run.out);
  ASSERT_EQ(j["text_embeddings"].size(), 2u);
  EXPECT_EQ(j["token_ids"][0].get<std::vector<int32_t>>(), tok.encode_padded("a photo of a dog.", 16));
  EXPECT_EQ(j["token_ids"][1].get<std::vector<int32_t>>(), tok.encode_padded("two cats", 16));

  run = run_mmkit("tokenize --model " + path + " --json 'a photo of a dog.'", dir);
  ASSERT_EQ(run.code, 0) << run.err;
  j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j[0]["token_ids"].get<std::vector<int32_t>>(), tok.encode_padded("a photo of a dog.", 16));

  run = run_mmkit("tokenize 'a cat'", dir);
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("--vocab"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("--model"), std::string::npos) << run.err;
}

TEST(ClipTokenizerEmbedded, ExplicitVocabOverridesEmbedded) {
  if (!exists(kMerges)) GTEST_SKIP() << "CLIP merges file not found: " << kMerges << " (shared data)";
  text::ClipTokenizer tok = trained_tokenizer();
  std::map<std::string, std::string> meta;
  set_tokenizer_metadata(meta, tok);
  std::string dir = make_dir();
  std::string path = save_model(dir, 49408, meta);
  text::ClipTokenizer openai = text::ClipTokenizer::from_openai_merges(kMerges);
  const std::string t = "a photo of a cat.";
  ASSERT_NE(tok.encode_padded(t, 16), openai.encode_padded(t, 16));
  EXPECT_EQ(ClipRunner::open(path).tokenize({t})[0], tok.encode_padded(t, 16));
  EXPECT_EQ(ClipRunner::open(path, kMerges).tokenize({t})[0], openai.encode_padded(t, 16));
  CliRun run = run_mmkit("tokenize --model " + path + " --vocab " + kMerges + " --json '" + t + "'", dir);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)[0]["token_ids"].get<std::vector<int32_t>>(), openai.encode_padded(t, 16));
  // The OpenAI tokenizer embedded the same way gives OpenAI's ids from the model file alone.
  std::map<std::string, std::string> meta2;
  set_tokenizer_metadata(meta2, openai);
  std::string path2 = save_model(make_dir(), 49408, meta2);
  EXPECT_EQ(ClipRunner::open(path2).tokenize({t})[0], openai.encode_padded(t, 16));
}
