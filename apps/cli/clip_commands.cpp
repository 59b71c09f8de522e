// `mmkit embed`, `mmkit tokenize`, `mmkit zero-shot`: CLIP inference; `mmkit
// init-clip`: a seeded random CLIP (with a learned tokenizer) for tests and
// benchmarks.
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/infer/embed_folder.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/text/bpe_trainer.h"

namespace mmkit::cli {
namespace {

nlohmann::json rows_json(const Tensor& t) {
  nlohmann::json a = nlohmann::json::array();
  const int64_t E = t.shape()[-1];
  for (int64_t i = 0; i < t.numel() / E; ++i)
    a.push_back(std::vector<float>(t.f32() + i * E, t.f32() + (i + 1) * E));
  return a;
}

struct ClipArgs {
  std::string model, vocab, preprocess = "clip", images_dir, out;
  std::vector<std::string> images, texts, templates, files;
  std::string labels;
  bool raw = false, json = false;
  int threads = 0;
};

int run_embed(const ClipArgs& a) {
  set_num_threads(a.threads);
  ClipRunner r = ClipRunner::open(a.model, a.vocab, a.preprocess);
  if (!a.images_dir.empty()) {
    MMKIT_CHECK(!a.out.empty(), "--images DIR needs --out FILE.jsonl or FILE.npy");
    EmbedFolderResult res = embed_folder(r, a.images_dir, a.out, !a.raw);
    for (auto& s : res.skipped) std::fprintf(stderr, "skipped %s\n", s.c_str());
    std::printf("embedded %lld images into %s (%zu skipped)\n", (long long)res.embedded, a.out.c_str(),
                res.skipped.size());
    return 0;
  }
  MMKIT_CHECK(!a.images.empty() || !a.texts.empty(), "nothing to embed: give --image FILE and/or --text TEXT");
  std::vector<Image> imgs;
  for (auto& f : a.images) imgs.push_back(decode_image_file(f));
  nlohmann::json j;
  j["image_embeddings"] = imgs.empty() ? nlohmann::json::array() : rows_json(r.embed_images(imgs, !a.raw));
  j["text_embeddings"] = a.texts.empty() ? nlohmann::json::array() : rows_json(r.embed_texts(a.texts, !a.raw));
  j["token_ids"] = r.tokenize(a.texts);
  j["normalized"] = !a.raw;
  std::cout << (a.json ? j.dump() : j.dump(1)) << "\n";
  return 0;
}

int run_tokenize(const ClipArgs& a) {
  if (a.vocab.empty() && a.model.empty())
    fail("tokenize needs --vocab (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt) "
         "or --model (a CLIP checkpoint with its tokenizer embedded, or with vocabulary files beside it)");
  // With --model, its tokenizer (unless --vocab overrides) and its context length.
  std::unique_ptr<text::ClipTokenizer> tok = open_clip_tokenizer(a.vocab, a.model);
  int context = 77;
  if (!a.model.empty()) {
    io::SafetensorsFile f = io::SafetensorsFile::open(a.model);
    auto it = f.metadata().find("config");
    if (it != f.metadata().end()) context = int(ClipConfig::from_json(it->second).context_length);
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& t : a.texts) {
    auto ids = tok->encode_padded(t, context);
    if (a.json) {
      out.push_back({{"text", t}, {"token_ids", ids}});
    } else {
      for (size_t i = 0; i < ids.size() && (i == 0 || ids[i] != 0); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
  }
  if (a.json) std::cout << out.dump() << "\n";
  return 0;
}

int run_zero_shot(const ClipArgs& a) {
  set_num_threads(a.threads);
  std::vector<std::string> labels = split_commas(a.labels);
  MMKIT_CHECK(!labels.empty(), "--labels needs a comma-separated list, e.g. --labels cat,dog");
  ClipRunner r = ClipRunner::open(a.model, a.vocab, a.preprocess);
  std::vector<Image> imgs;
  for (auto& f : a.files) imgs.push_back(decode_image_file(f));
  ZeroShotResult z = r.zero_shot(imgs, labels, a.templates);
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < imgs.size(); ++i) {
    if (a.json) {
      out.push_back({{"image", a.files[i]}, {"label", labels[size_t(z.best[i])]}, {"probs", z.probs[i]}, {"labels", labels}});
    } else {
      std::printf("%s\t%s\t%.3f\n", a.files[i].c_str(), labels[size_t(z.best[i])].c_str(), z.probs[i][size_t(z.best[i])]);
    }
  }
  if (a.json) std::cout << out.dump() << "\n";
  return 0;
}

struct InitClipArgs {
  std::string preset = "tiny", out;
  uint64_t seed = 0;
  int bpe_merges = 400;
};

// Captions the stored tokenizer is learned from: Fashion-MNIST captions and
// descriptions of `mmkit data shapes` images, so either kind of query tokenizes
// into whole words.
std::vector<std::string> tokenizer_corpus() {
  std::vector<std::string> c;
  for (uint64_t s = 0; s < 300; ++s)
    for (int k = 0; k < 10; ++k) c.push_back(data::fmnist_caption(k, s));
  const char* colours[] = {"red", "green", "blue", "yellow", "purple", "orange", "black", "brown", "pink", "dark"};
  const char* shapes[] = {"circle", "disc", "square", "stripe", "bar", "line", "shape"};
  for (const char* col : colours)
    for (const char* sh : shapes) {
      c.push_back(std::string("a ") + col + " " + sh);
      c.push_back(std::string("a photo of a ") + col + " " + sh + " on a light background.");
    }
  return c;
}

// "tiny": a few hundred thousand parameters with CLIP's real vocabulary size
// and context, for tests and the browser test; "small": 512-d embeddings (the
// index size of real CLIPs) from small towers, for index benchmarks;
// "vit-b-32": OpenAI ViT-B/32's shapes (random weights) for benchmarks.
ClipConfig preset_config(const std::string& p) {
  if (p == "vit-b-32") return ClipConfig{};
  if (p == "small")
    return ClipConfig::from_json(R"({"embed_dim": 512, "image_resolution": 64, "vision_patch_size": 16,
      "vision_width": 128, "vision_layers": 2, "vision_heads": 4, "context_length": 77, "vocab_size": 49408,
      "transformer_width": 128, "transformer_layers": 2, "transformer_heads": 4})");
  MMKIT_CHECK(p == "tiny", "unknown --preset '", p, "' (expected tiny, small or vit-b-32)");
  return ClipConfig::from_json(R"({"embed_dim": 64, "image_resolution": 64, "vision_patch_size": 16,
    "vision_width": 64, "vision_layers": 2, "vision_heads": 2, "context_length": 77, "vocab_size": 49408,
    "transformer_width": 64, "transformer_layers": 2, "transformer_heads": 2})");
}

int run_init_clip(const InitClipArgs& a) {
  ClipConfig cfg = preset_config(a.preset);
  std::map<std::string, std::string> meta = {{"config", cfg.to_json()}};
  std::string tok_note = "no tokenizer";
  if (a.bpe_merges > 0) {
    auto tok = text::ClipTokenizer::from_merges(text::train_bpe_merges(tokenizer_corpus(), a.bpe_merges));
    MMKIT_CHECK(tok.vocab_size() <= cfg.vocab_size, "--bpe-merges ", a.bpe_merges, " gives ", tok.vocab_size(),
                " tokens, more than the model's ", cfg.vocab_size);
    set_tokenizer_metadata(meta, tok);
    tok_note = "tokenizer of " + std::to_string(tok.vocab_size()) + " tokens";
  }
  Clip m;
  m.init(cfg, a.seed);
  io::save_parameters(a.out, m.parameters(), meta);
  std::printf("wrote %s (%s, seed %llu, %s)\n", a.out.c_str(), a.preset.c_str(), (unsigned long long)a.seed,
              tok_note.c_str());
  return 0;
}

}  // namespace

void add_clip_commands(Cli& c) {
  auto ea = std::make_shared<ClipArgs>();
  auto* em = c.app->add_subcommand("embed", "CLIP image and text embeddings (L2-normalised unless --raw)");
  em->add_option("--model", ea->model, "CLIP safetensors file")->required();
  em->add_option("--vocab", ea->vocab, "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt (default: the model's embedded tokenizer, else files beside the model)");
  em->add_option("--image", ea->images, "image file (repeatable)");
  em->add_option("--text", ea->texts, "text (repeatable)");
  em->add_option("--images", ea->images_dir, "embed every PNG/JPEG in this folder (needs --out)");
  em->add_option("--out", ea->out, "output for --images: FILE.jsonl or FILE.npy");
  em->add_option("--preprocess", ea->preprocess, "clip or imagenet")->capture_default_str();
  em->add_flag("--raw", ea->raw, "do not L2-normalise");
  em->add_flag("--json", ea->json, "compact JSON");
  add_threads_option(em, &ea->threads);
  c.on(em, ea, run_embed);

  auto ta = std::make_shared<ClipArgs>();
  auto* tk = c.app->add_subcommand("tokenize", "CLIP BPE token ids (77 tokens, or the --model's context length; start/end included)");
  tk->add_option("--vocab", ta->vocab, "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt (overrides --model's)");
  tk->add_option("--model", ta->model, "CLIP safetensors file: its embedded tokenizer, else vocabulary files beside it");
  tk->add_option("texts", ta->texts, "texts")->required();
  tk->add_flag("--json", ta->json, "print JSON");
  c.on(tk, ta, run_tokenize);

  auto za = std::make_shared<ClipArgs>();
  auto* zs = c.app->add_subcommand("zero-shot", "zero-shot classification of images with CLIP");
  zs->add_option("--model", za->model, "CLIP safetensors file")->required();
  zs->add_option("--vocab", za->vocab, "bpe_simple_vocab_16e6.txt.gz or HF folder (default: the model's embedded tokenizer, else files beside the model)");
  zs->add_option("--labels", za->labels, "comma-separated class names")->required();
  zs->add_option("--template", za->templates, "prompt template with {} (repeatable; averaged as CLIP does)");
  zs->add_option("--preprocess", za->preprocess, "clip or imagenet")->capture_default_str();
  zs->add_option("images", za->files, "image files")->required();
  zs->add_flag("--json", za->json, "print JSON");
  add_threads_option(zs, &za->threads);
  c.on(zs, za, run_zero_shot);

  auto ca = std::make_shared<InitClipArgs>();
  auto* ic = c.app->add_subcommand("init-clip", "write a CLIP with seeded random weights (tests, benchmarks)");
  ic->add_option("--preset", ca->preset, "tiny, small or vit-b-32")->capture_default_str();
  ic->add_option("--seed", ca->seed)->capture_default_str();
  ic->add_option("--bpe-merges", ca->bpe_merges,
                 "merges of the BPE tokenizer learned from built-in captions and stored in the file (0: none)")
      ->capture_default_str();
  ic->add_option("--out", ca->out, "output .safetensors")->required();
  c.on(ic, ca, run_init_clip);
}

}  // namespace mmkit::cli
