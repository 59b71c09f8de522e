// The `mmkit` command line: a thin client of the library. Each subcommand
// parses its flags, calls one library entry point and prints the result.
// Errors (mmkit::Error) print "mmkit: error: <message>" and exit 1; usage
// errors exit 2.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "mmkit/core/parallel.h"
#include "mmkit/eval/clip_runner.h"
#include "mmkit/eval/embed_folder.h"
#include "mmkit/eval/classify.h"
#include "mmkit/eval/plots.h"
#include "mmkit/train/vit_trainer.h"

using namespace mmkit;

namespace {

// "fashion-mnist" names the Debian package's directory; anything else is a
// directory holding the same four IDX files.
std::string data_dir(const std::string& d) {
  return d == "fashion-mnist" ? std::string(data::kFashionMnistDir) : d;
}

int run_train_vit(train::VitTrainOptions& o) {
  o.data_dir = data_dir(o.data_dir);
  auto hist = train::train_vit(o);
  if (int sig = train::last_stop_signal()) return 128 + sig;  // saved; conventional exit code
  if (!hist.empty())
    std::printf("final test accuracy %.4f after %d epochs; model in %s/model.safetensors\n",
                hist.back().test_acc, hist.back().epoch, o.out_dir.c_str());
  return 0;
}

int run_eval_vit(const std::string& model, const std::string& data, bool json, int threads,
                 std::string confusion_png) {
  set_num_threads(threads);
  Vit vit = train::load_vit(model);
  data::ImageSet test = data::load_fashion_mnist(data_dir(data), "test");
  train::EvalResult r = train::evaluate_vit(vit, test, 500, !json);
  if (confusion_png.empty()) {
    std::string dir = model;
    if (dir.size() > 12 && dir.substr(dir.size() - 12) == ".safetensors") {
      size_t slash = dir.find_last_of('/');
      dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    }
    confusion_png = dir + "/confusion_matrix.png";
  }
  std::vector<std::string> names = vit.cfg.class_names;
  if (names.empty())
    for (int64_t k = 0; k < vit.cfg.num_classes; ++k) names.push_back(std::to_string(k));
  plot_confusion_matrix(confusion_png, r.confusion, names, "ViT on Fashion-MNIST test set");
  if (json) {
    nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss},      {"images", r.n},
                        {"confusion", r.confusion}, {"classes", names}, {"confusion_png", confusion_png}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("test accuracy %.4f (%lld images), mean loss %.4f\nconfusion matrix: %s\n",
                r.accuracy, (long long)r.n, r.loss, confusion_png.c_str());
  }
  return 0;
}

int run_classify(const std::string& model, const std::vector<std::string>& files, bool json,
                 int threads, const std::string& preprocess, int64_t heads) {
  set_num_threads(threads);
  Vit vit = train::load_vit(model, heads);
  if (!preprocess.empty()) vit.cfg.preprocess = preprocess == "none" ? "" : preprocess;
  std::vector<Image> images;
  for (auto& f : files) images.push_back(decode_image_file(f));
  auto res = classify_images(vit, images);
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < files.size(); ++i) {
    if (json) {
      arr.push_back({{"image", files[i]}, {"label", res[i].name}, {"index", res[i].label},
                     {"probability", res[i].probability}, {"probs", res[i].probs},
                     {"logits", res[i].logits}});
    } else {
      std::printf("%s\t%s\t%.3f\n", files[i].c_str(), res[i].name.c_str(), res[i].probability);
    }
  }
  if (json) std::cout << arr.dump() << "\n";
  return 0;
}

std::vector<std::string> split_labels(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    std::string part = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
    size_t a = part.find_first_not_of(" \t"), b = part.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(part.substr(a, b - a + 1));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

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
  if (a.vocab.empty()) fail("tokenize needs --vocab (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt)");
  std::unique_ptr<text::ClipTokenizer> tok = open_clip_tokenizer(a.vocab);
  nlohmann::json out = nlohmann::json::array();
  for (auto& t : a.texts) {
    auto ids = tok->encode_padded(t, 77);
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
  std::vector<std::string> labels = split_labels(a.labels);
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

}  // namespace

int main(int argc, char** argv) {
  mmkit::apply_default_wait_policy(argc, argv);
  CLI::App app{"mmkit: vision-language models in C++ (train, evaluate and run ViTs)"};
  app.require_subcommand(1);

  // ---- train vit
  train::VitTrainOptions to;
  to.data_dir = "fashion-mnist";
  auto* train_cmd = app.add_subcommand("train", "train a model");
  train_cmd->require_subcommand(1);
  auto* tv = train_cmd->add_subcommand("vit", "train a Vision Transformer classifier");
  tv->add_option("--data", to.data_dir, "fashion-mnist (Debian package) or a directory of IDX files")
      ->capture_default_str();
  tv->add_option("--out", to.out_dir, "output directory (checkpoints, curves)")->required();
  tv->add_option("--epochs", to.epochs)->capture_default_str();
  tv->add_option("--batch", to.batch)->capture_default_str();
  tv->add_option("--lr", to.lr, "peak learning rate")->capture_default_str();
  tv->add_option("--min-lr", to.min_lr, "final learning rate of the cosine schedule")->capture_default_str();
  tv->add_option("--weight-decay", to.weight_decay)->capture_default_str();
  tv->add_option("--warmup-steps", to.warmup_steps, "linear warmup steps (-1: one epoch)")->capture_default_str();
  tv->add_option("--label-smoothing", to.label_smoothing)->capture_default_str();
  tv->add_option("--clip-grad", to.clip_grad, "max global gradient norm (0: off)")->capture_default_str();
  bool no_augment = false;
  tv->add_flag("--no-augment", no_augment, "disable random shifts and flips");
  tv->add_option("--aug-shift", to.aug_shift, "max random shift in pixels")->capture_default_str();
  bool no_flip = false;
  tv->add_flag("--no-flip", no_flip, "no random horizontal flips");
  tv->add_option("--seed", to.seed)->capture_default_str();
  tv->add_option("--threads", to.threads, "0 = all cores")->capture_default_str();
  tv->add_option("--checkpoint-every", to.checkpoint_every, "steps between checkpoints")->capture_default_str();
  tv->add_flag("--resume", to.resume, "continue the run in --out from its last checkpoint");
  tv->add_option("--patch", to.model.patch_size)->capture_default_str();
  tv->add_option("--dim", to.model.dim)->capture_default_str();
  tv->add_option("--depth", to.model.depth)->capture_default_str();
  tv->add_option("--heads", to.model.heads)->capture_default_str();
  tv->add_option("--mlp-dim", to.model.mlp_dim)->capture_default_str();
  tv->add_option("--dropout", to.model.dropout)->capture_default_str();
  tv->add_flag("--norm-first", to.model.norm_first, "pre-norm blocks + final LayerNorm (default: post-norm)");
  tv->add_option("--limit-train", to.limit_train, "use only the first N training images")->capture_default_str();
  tv->add_option("--limit-test", to.limit_test, "use only the first N test images")->capture_default_str();
  tv->add_option("--max-steps", to.max_steps, "stop (with a checkpoint) after this many steps")->capture_default_str();

  // ---- eval vit
  std::string model, eval_data = "fashion-mnist", confusion;
  bool json = false;
  int threads = 0;
  auto* eval_cmd = app.add_subcommand("eval", "evaluate a model");
  eval_cmd->require_subcommand(1);
  auto* ev = eval_cmd->add_subcommand("vit", "test accuracy and confusion matrix of a ViT");
  ev->add_option("--model", model, "model directory or .safetensors file")->required();
  ev->add_option("--data", eval_data, "fashion-mnist or a directory of IDX files")->capture_default_str();
  ev->add_option("--confusion", confusion, "confusion-matrix PNG (default: MODEL_DIR/confusion_matrix.png)");
  ev->add_flag("--json", json, "print JSON");
  ev->add_option("--threads", threads)->capture_default_str();

  // ---- classify
  std::vector<std::string> files;
  auto* cl = app.add_subcommand("classify", "label image files with a ViT classifier");
  cl->add_option("--model", model, "model directory or .safetensors file")->required();
  cl->add_option("images", files, "PNG or JPEG files")->required();
  cl->add_flag("--json", json, "print JSON");
  std::string cl_preprocess;
  int64_t cl_heads = 0;
  cl->add_option("--preprocess", cl_preprocess, "imagenet, clip or none (default: the model's own)");
  cl->add_option("--heads", cl_heads, "attention heads, for checkpoints that do not record them (torchvision)");
  cl->add_option("--threads", threads)->capture_default_str();

  // ---- CLIP: embed, tokenize, zero-shot
  ClipArgs ca;
  auto* em = app.add_subcommand("embed", "CLIP image and text embeddings (L2-normalised unless --raw)");
  em->add_option("--model", ca.model, "CLIP safetensors file")->required();
  em->add_option("--vocab", ca.vocab, "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt (default: beside the model)");
  em->add_option("--image", ca.images, "image file (repeatable)");
  em->add_option("--text", ca.texts, "text (repeatable)");
  em->add_option("--images", ca.images_dir, "embed every PNG/JPEG in this folder (needs --out)");
  em->add_option("--out", ca.out, "output for --images: FILE.jsonl or FILE.npy");
  em->add_option("--preprocess", ca.preprocess, "clip or imagenet")->capture_default_str();
  em->add_flag("--raw", ca.raw, "do not L2-normalise");
  em->add_flag("--json", ca.json, "compact JSON");
  em->add_option("--threads", ca.threads)->capture_default_str();
  auto* tk = app.add_subcommand("tokenize", "CLIP BPE token ids (77 tokens, start/end included)");
  tk->add_option("--vocab", ca.vocab, "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt")->required();
  tk->add_option("texts", ca.texts, "texts")->required();
  tk->add_flag("--json", ca.json, "print JSON");
  auto* zs = app.add_subcommand("zero-shot", "zero-shot classification of images with CLIP");
  zs->add_option("--model", ca.model, "CLIP safetensors file")->required();
  zs->add_option("--vocab", ca.vocab, "bpe_simple_vocab_16e6.txt.gz or HF folder (default: beside the model)");
  zs->add_option("--labels", ca.labels, "comma-separated class names")->required();
  zs->add_option("--template", ca.templates, "prompt template with {} (repeatable; averaged as CLIP does)");
  zs->add_option("--preprocess", ca.preprocess, "clip or imagenet")->capture_default_str();
  zs->add_option("images", ca.files, "image files")->required();
  zs->add_flag("--json", ca.json, "print JSON");
  zs->add_option("--threads", ca.threads)->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (*tv) {
      to.augment = !no_augment;
      to.aug_flip = !no_flip;
      return run_train_vit(to);
    }
    if (*ev) return run_eval_vit(model, eval_data, json, threads, confusion);
    if (*cl) return run_classify(model, files, json, threads, cl_preprocess, cl_heads);
    if (*em) return run_embed(ca);
    if (*tk) return run_tokenize(ca);
    if (*zs) return run_zero_shot(ca);
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "mmkit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "mmkit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
