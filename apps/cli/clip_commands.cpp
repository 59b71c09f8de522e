// `mmkit embed`, `mmkit tokenize`, `mmkit zero-shot`: CLIP inference; `mmkit
// init-clip`: a seeded random CLIP (with a learned tokenizer) for tests and
// benchmarks.
#include <algorithm>
#include <cmath>
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
#include "mmkit/io/layouts.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/util/file_util.h"

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
  std::string model, vocab, preprocess, images_dir, out;
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
    make_parent_dirs(a.out);
    EmbedFolderResult res = embed_folder(r, a.images_dir, a.out, !a.raw);
    for (auto& s : res.skipped) std::fprintf(stderr, "skipped %s\n", s.c_str());
    std::printf("embedded %lld images into %s (%zu skipped)\n", (long long)res.embedded, a.out.c_str(),
                res.skipped.size());
    return 0;
  }
  MMKIT_CHECK(!a.images.empty() || !a.texts.empty(), "nothing to embed: give --image FILE and/or --text TEXT");
  MMKIT_CHECK(a.out.empty(), "--out is for --images DIR; with --image/--text, print JSON with --json");
  std::vector<Image> imgs;
  for (auto& f : a.images) imgs.push_back(decode_image_file(f));
  Tensor ie = imgs.empty() ? Tensor() : r.embed_images(imgs, !a.raw);
  Tensor te = a.texts.empty() ? Tensor() : r.embed_texts(a.texts, !a.raw);
  if (a.json) {
    nlohmann::json j;
    j["image_embeddings"] = imgs.empty() ? nlohmann::json::array() : rows_json(ie);
    j["text_embeddings"] = a.texts.empty() ? nlohmann::json::array() : rows_json(te);
    j["token_ids"] = r.tokenize(a.texts);
    j["normalized"] = !a.raw;
    std::cout << j.dump() << "\n";
    return 0;
  }
  // Readable: each embedding's size, norm and first values; with images and texts, their cosine similarities.
  const int64_t E = r.embed_dim();
  auto row = [&](const std::string& what, const float* v) {
    double n2 = 0;
    for (int64_t e = 0; e < E; ++e) n2 += double(v[e]) * v[e];
    std::printf("%s: %lld-d, norm %.4f, [", what.c_str(), (long long)E, std::sqrt(n2));
    for (int64_t e = 0; e < std::min<int64_t>(E, 4); ++e) std::printf("%s%.4f", e ? " " : "", v[e]);
    std::printf("%s]\n", E > 4 ? " ..." : "");
  };
  for (size_t i = 0; i < imgs.size(); ++i) row("image " + a.images[i], ie.f32() + int64_t(i) * E);
  for (size_t i = 0; i < a.texts.size(); ++i) row("text \"" + a.texts[i] + "\"", te.f32() + int64_t(i) * E);
  if (!imgs.empty() && !a.texts.empty()) {
    std::printf("cosine similarity (rows: images, columns: texts)\n");
    for (size_t i = 0; i < imgs.size(); ++i) {
      std::printf("  %s", a.images[i].c_str());
      for (size_t t = 0; t < a.texts.size(); ++t) {
        const float *x = ie.f32() + int64_t(i) * E, *y = te.f32() + int64_t(t) * E;
        double dot = 0, nx = 0, ny = 0;
        for (int64_t e = 0; e < E; ++e) dot += double(x[e]) * y[e], nx += double(x[e]) * x[e], ny += double(y[e]) * y[e];
        std::printf("  %.4f", nx > 0 && ny > 0 ? dot / std::sqrt(nx * ny) : 0.0);
      }
      std::printf("\n");
    }
  }
  std::printf("(--json prints every value)\n");
  return 0;
}

int run_tokenize(const ClipArgs& a) {
  if (a.vocab.empty() && a.model.empty())
    fail("tokenize needs --vocab (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt) "
         "or --model (a CLIP checkpoint with its tokenizer embedded, or with vocabulary files beside it)");
  // With --model, its tokenizer (unless --vocab overrides) and its context length.
  // SigLIP: SentencePiece (spiece.model beside the model, or --vocab), padded with </s> to 64, so
  // its rows are printed whole; CLIP rows stop at the zero padding.
  const bool siglip = !a.model.empty() &&
                      io::detect_layout(io::SafetensorsFile::open(resolve_model_file(a.model))) == io::Layout::hf_siglip;
  const std::vector<std::vector<int32_t>> all = tokenize_clip_texts(a.texts, a.vocab, a.model);
  nlohmann::json out = nlohmann::json::array();
  for (size_t k = 0; k < a.texts.size(); ++k) {
    const std::vector<int32_t>& ids = all[k];
    if (a.json) {
      out.push_back({{"text", a.texts[k]}, {"token_ids", ids}});
    } else {
      for (size_t i = 0; i < ids.size() && (siglip || i == 0 || ids[i] != 0); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
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
    const size_t best = size_t(z.best[i]);
    if (a.json) {  // the keys of /v1/zero-shot, plus the image
      out.push_back({{"image", a.files[i]}, {"label", labels[best]}, {"best", best}, {"probability", z.probs[i][best]},
                     {"labels", labels}, {"probs", z.probs[i]}, {"probabilities", r.probability_kind()}});
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
  make_parent_dirs(a.out);
  io::save_parameters(a.out, m.parameters(), meta);
  std::printf("wrote %s (%s, seed %llu, %s)\n", a.out.c_str(), a.preset.c_str(), (unsigned long long)a.seed,
              tok_note.c_str());
  return 0;
}

}  // namespace

void add_clip_commands(Cli& c) {
  auto ea = std::make_shared<ClipArgs>();
  auto* em = c.app->add_subcommand("embed", "CLIP image and text embeddings (L2-normalised unless --raw)");
  add_model_option(em, &ea->model, "CLIP or SigLIP")->required();
  add_vocab_option(em, &ea->vocab);
  add_repeatable(em, "--image", &ea->images, "image file");
  add_repeatable(em, "--text", &ea->texts, "text");
  em->add_option("--images", ea->images_dir, "embed every PNG/JPEG in this folder (needs --out; default: none)");
  em->add_option("--out", ea->out, "output for --images: FILE.jsonl or FILE.npy (folders created; default: none)");
  em->add_option("--preprocess", ea->preprocess, "clip, siglip or imagenet (default: the model's own: siglip for SigLIP, else clip)");
  em->add_flag("--raw", ea->raw, "do not L2-normalise");
  add_json_flag(em, &ea->json);
  add_threads_option(em, &ea->threads);
  c.on(em, ea, run_embed);

  auto ta = std::make_shared<ClipArgs>();
  auto* tk = c.app->add_subcommand("tokenize", "CLIP BPE token ids (77 tokens, or the --model's context length; start/end included); with a SigLIP --model its SentencePiece ids, </s> and </s> padding to 64");
  add_vocab_option(tk, &ta->vocab);
  add_model_option(tk, &ta->model, "CLIP or SigLIP")->description(
      "CLIP or SigLIP model whose tokenizer and context length to use: a .safetensors file, a run folder or a "
      "Hugging Face folder (default: none; --vocab and 77 tokens then)");
  tk->add_option("texts", ta->texts, "texts")->required();
  add_json_flag(tk, &ta->json);
  c.on(tk, ta, run_tokenize);

  auto za = std::make_shared<ClipArgs>();
  auto* zs = c.app->add_subcommand("zero-shot", "zero-shot classification of images with CLIP");
  add_model_option(zs, &za->model, "CLIP or SigLIP")->required();
  add_vocab_option(zs, &za->vocab);
  zs->add_option("--labels", za->labels, "comma-separated class names")->required();
  add_repeatable(zs, "--template", &za->templates,
                 "prompt template with {} for the label, averaged as CLIP does (default: \"a photo of a {}.\")");
  zs->add_option("--preprocess", za->preprocess, "clip, siglip or imagenet (default: the model's own: siglip for SigLIP, else clip)");
  zs->add_option("images", za->files, "PNG or JPEG files")->required();
  add_json_flag(zs, &za->json);
  add_threads_option(zs, &za->threads);
  c.on(zs, za, run_zero_shot);

  auto ca = std::make_shared<InitClipArgs>();
  auto* ic = c.app->add_subcommand("init-clip", "write a CLIP with seeded random weights (tests, demos, benchmarks)");
  ic->add_option("--preset", ca->preset, "tiny, small or vit-b-32")->capture_default_str();
  ic->add_option("--seed", ca->seed, "random seed of the weights")->capture_default_str();
  ic->add_option("--bpe-merges", ca->bpe_merges,
                 "merges of the BPE tokenizer learned from built-in captions and stored in the file (0: none)")
      ->capture_default_str();
  ic->add_option("--out", ca->out, "output .safetensors file (folders created)")->required();
  c.on(ic, ca, run_init_clip);
}

}  // namespace mmkit::cli
