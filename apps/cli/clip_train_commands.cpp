// `mmkit train clip`, `mmkit eval zero-shot`, `mmkit eval retrieval`:
// contrastive training and its evaluations.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/data/image_text_dataset.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/report/plots.h"
#include "mmkit/eval/retrieval.h"
#include "mmkit/eval/zero_shot_eval.h"
#include "mmkit/train/clip_trainer.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/stop_signal.h"

namespace mmkit::cli {
namespace {

struct TrainClipArgs {
  train::ClipTrainOptions o;
  bool no_augment = false;
  std::shared_ptr<StoredFlags> stored;
};

// A data folder holding train.jsonl or train.csv means that file (as `train caption` and `train vqa`
// read DIR/train.jsonl); a folder of IDX files stays a Fashion-MNIST-style folder.
std::string caption_file_in(const std::string& data, const std::string& split) {
  if (!is_directory(data)) return data;
  for (const char* ext : {".jsonl", ".csv"})
    if (path_exists(data + "/" + split + ext)) return data + "/" + split + ext;
  return data;
}

int run_train_clip(TrainClipArgs& a) {
  train::ClipTrainOptions& o = a.o;
  o.data = caption_file_in(o.data, "train");  // before restore(): the run stores the file
  a.stored->restore(o);
  o.augment = !a.no_augment;
  if (!o.init.empty()) o.init = resolve_model_file(o.init);
  auto hist = train::train_clip(o);
  if (int code = training_exit_code()) return code;  // interrupted; checkpoint saved
  if (!is_root_process()) return 0;                  // data-parallel: rank 0 reports
  if (!hist.empty()) {
    const auto& r = hist.back();
    std::printf("done: %s, final loss %.4f", plural(r.epoch, "epoch").c_str(), r.train_loss);
    if (r.zero_shot_acc >= 0) std::printf(", zero-shot top-1 %.4f on held-out templates", r.zero_shot_acc);
    std::printf("; model in %s/model.safetensors\n", o.out_dir.c_str());
  }
  return 0;
}

// Labelled images: Fashion-MNIST's test set, or DIR/<class>/<image> (class
// names from the sub-directory names, sorted).
struct LabelledImages {
  std::vector<float> pixels;  // [N, 3, R, R]
  std::vector<int32_t> labels;
  std::vector<std::string> classes;
};

std::vector<std::string> list_dir(const std::string& dir, bool dirs) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  MMKIT_CHECK(d, "cannot open directory ", dir);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::stat((dir + "/" + n).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) == dirs) out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

LabelledImages load_labelled(ClipRunner& r, const std::string& data, int64_t limit) {
  LabelledImages li;
  const int64_t R = r.model().cfg.image_resolution, per = 3 * R * R;
  struct stat st;
  const bool folder = data != "fashion-mnist" && ::stat(data.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
                      ::stat((data + "/t10k-images-idx3-ubyte.gz").c_str(), &st) != 0;
  if (!folder) {
    data::ImageSet test = data::load_fashion_mnist(data_dir(data), "test");
    MMKIT_CHECK(test.rows == R, "Fashion-MNIST images are ", test.rows, "x", test.cols, "; the model expects ", R, "x", R);
    int64_t n = limit > 0 ? std::min(limit, test.n) : test.n;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    li.pixels.resize(size_t(n * per));
    data::fmnist_to_clip_pixels(test, idx.data(), n, li.pixels.data());
    li.labels.assign(test.labels.begin(), test.labels.begin() + n);
    li.classes = data::fmnist_prompt_names();
    return li;
  }
  li.classes = list_dir(data, true);
  MMKIT_CHECK(!li.classes.empty(), data, ": no class sub-directories (expected DIR/<class>/<image>)");
  for (size_t k = 0; k < li.classes.size(); ++k)
    for (const auto& f : list_dir(data + "/" + li.classes[k], false)) {
      if (limit > 0 && int64_t(li.labels.size()) >= limit) break;
      Image img = decode_image_file(data + "/" + li.classes[k] + "/" + f);
      li.pixels.resize(li.pixels.size() + size_t(per));
      preprocess_image(img, r.preprocess(), li.pixels.data() + li.pixels.size() - size_t(per));
      li.labels.push_back(int32_t(k));
    }
  MMKIT_CHECK(!li.labels.empty(), data, ": no images found");
  return li;
}

struct EvalClipArgs {
  std::string model, vocab, data = "fashion-mnist", confusion, labels;
  std::vector<std::string> templates;
  bool json = false, train_templates = false;
  int threads = 0;
  int64_t limit = 0;
};

int run_eval_zero_shot(const EvalClipArgs& a) {
  set_num_threads(a.threads);
  ClipRunner r = ClipRunner::open(a.model, a.vocab);
  LabelledImages li = load_labelled(r, a.data, a.limit);
  std::vector<std::string> classes = a.labels.empty() ? li.classes : split_commas(a.labels);
  MMKIT_CHECK(classes.size() == li.classes.size(), "--labels gives ", classes.size(), " names for ",
              li.classes.size(), " classes");
  std::vector<std::string> templates = a.templates;
  const bool fmnist = a.data == "fashion-mnist";
  if (templates.empty())
    templates = fmnist ? (a.train_templates ? data::fmnist_train_templates() : data::fmnist_heldout_templates())
                       : std::vector<std::string>{"a photo of a {}."};
  ZeroShotEval z = zero_shot_accuracy(r.model(), r.tokenizer(), li.pixels.data(), li.labels, classes, templates,
                                      !a.json);
  std::string png = a.confusion.empty() ? model_dir(a.model) + "/confusion_matrix.png" : a.confusion;
  make_parent_dirs(png);
  plot_confusion_matrix(png, z.confusion, classes, "CLIP zero-shot (" + std::to_string(templates.size()) + " templates)");
  if (a.json) {
    std::cout << nlohmann::json{{"top1", z.top1},          {"top5", z.top5},     {"images", z.n},
                                {"classes", classes},      {"templates", templates},
                                {"confusion", z.confusion}, {"confusion_png", png}}
                     .dump()
              << "\n";
  } else {
    std::printf("zero-shot top-1 %.4f, top-5 %.4f on %lld images, %zu classes, %zu templates\nconfusion matrix: %s\n",
                z.top1, z.top5, (long long)z.n, classes.size(), templates.size(), png.c_str());
  }
  return 0;
}

int run_eval_retrieval(const EvalClipArgs& a) {
  set_num_threads(a.threads);
  ClipRunner r = ClipRunner::open(a.model, a.vocab);
  Tensor img, txt;
  std::vector<int64_t> img_group, txt_group, img_class, txt_class;
  const bool fmnist = a.data == "fashion-mnist";
  if (fmnist) {
    // Caption set: test image i with a caption from a held-out template
    // (deterministic): per-pair recall, plus class-level recall (captions
    // describe a class, so another image of the class is also right).
    LabelledImages li = load_labelled(r, a.data, a.limit);
    const int64_t n = int64_t(li.labels.size());
    img = clip_embed_pixels(r.model(), li.pixels.data(), n, true, 250);
    std::vector<std::string> caps;
    const auto& tm = data::fmnist_heldout_templates();
    for (int64_t i = 0; i < n; ++i) {
      caps.push_back(data::fill_template(tm[size_t(i) % tm.size()], li.classes[size_t(li.labels[size_t(i)])]));
      img_group.push_back(i);
      txt_group.push_back(i);
      img_class.push_back(li.labels[size_t(i)]);
      txt_class.push_back(li.labels[size_t(i)]);
    }
    txt = r.embed_texts(caps, true);
  } else {
    auto pairs = data::read_image_text_file(caption_file_in(a.data, "test"));
    std::map<int64_t, std::string> images;
    for (auto& p : pairs)
      if (a.limit <= 0 || p.image_id < a.limit) images[p.image_id] = p.image;  // ids count images in file order
    if (a.limit > 0)
      pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [&](auto& p) { return p.image_id >= a.limit; }), pairs.end());
    std::vector<Image> decoded;
    for (auto& [id, path] : images) {
      decoded.push_back(decode_image_file(path));
      img_group.push_back(id);
    }
    img = r.embed_images(decoded, true);
    std::vector<std::string> caps;
    for (auto& p : pairs) {
      caps.push_back(p.caption);
      txt_group.push_back(p.image_id);
    }
    txt = r.embed_texts(caps, true);
  }
  RetrievalResult rr = retrieval_recall(img, txt, img_group, txt_group);
  nlohmann::json j = {{"images", rr.images}, {"texts", rr.texts}, {"k", rr.ks},
                      {"image_to_text_recall", rr.image_to_text}, {"text_to_image_recall", rr.text_to_image}};
  RetrievalResult rc;
  if (fmnist) {
    rc = retrieval_recall(img, txt, img_class, txt_class);
    j["class_image_to_text_recall"] = rc.image_to_text;
    j["class_text_to_image_recall"] = rc.text_to_image;
  }
  if (a.json) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("%lld images, %lld captions\n%-28s", (long long)rr.images, (long long)rr.texts, "");
  for (int k : rr.ks) std::printf("  R@%-4d", k);
  auto row = [&](const char* name, const std::vector<double>& v) {
    std::printf("\n%-28s", name);
    for (double x : v) std::printf("  %.4f", x);
  };
  row("image->text", rr.image_to_text);
  row("text->image", rr.text_to_image);
  if (fmnist) {
    row("image->text (same class)", rc.image_to_text);
    row("text->image (same class)", rc.text_to_image);
  }
  std::printf("\n");
  return 0;
}

}  // namespace

void add_clip_train_commands(Cli& c) {
  auto ta = std::make_shared<TrainClipArgs>();
  train::ClipTrainOptions* to = &ta->o;
  auto* tc = c.train->add_subcommand("clip", "contrastive training of a CLIP model (image and text towers; CLIP's or SigLIP's loss)");
  ta->stored = add_train_options(tc, to, {"--batch", "image-caption pairs per step (the contrastive loss compares all of them)", "linear warmup steps (-1: one epoch)", "pairs"});
  StoredFlags& st = *ta->stored;
  tc->add_option("--data", to->data,
                 "fashion-mnist (images + generated captions), a .jsonl/.csv of image,caption, or a folder with "
                 "train.jsonl (or train.csv)")
      ->capture_default_str();
  add_model_option(tc, &to->init, "CLIP", "--init")
      ->description("CLIP model to fine-tune: a .safetensors file, a run folder or a Hugging Face folder (saved back "
                    "in its OpenAI/OpenCLIP or Hugging Face layout; default: none, train from scratch)");
  add_vocab_option(tc, &to->vocab);  // "the model" is --init's
  tc->add_option("--bpe-merges", to->bpe_merges,
                 "BPE merges to learn from the captions when neither --vocab nor --init gives a tokenizer")
      ->capture_default_str();
  tc->add_option("--loss", to->loss,
                 "contrastive (CLIP's softmax over the batch) or sigmoid (SigLIP's pairwise sigmoid with a learned "
                 "bias, saved as logit_bias)")
      ->check(CLI::IsMember({"contrastive", "sigmoid"}))
      ->capture_default_str();
  tc->add_option("--freeze", to->freeze, "lock one tower: image or text (default: none)");
  tc->add_flag("--no-augment", ta->no_augment, "no random shifts and flips");
  tc->add_flag("--flip", to->flip, "random horizontal flips for caption files");
  tc->add_option("--decode-threads", to->workers, "image decoding threads")->capture_default_str();
  tc->add_option("--embed-dim", to->model.embed_dim, "joint embedding size")->capture_default_str();
  tc->add_option("--patch", to->model.vision_patch_size, "image tower patch size")->capture_default_str();
  tc->add_option("--vision-width", to->model.vision_width, "image tower width")->capture_default_str();
  tc->add_option("--vision-layers", to->model.vision_layers, "image tower layers")->capture_default_str();
  tc->add_option("--vision-heads", to->model.vision_heads, "image tower attention heads")->capture_default_str();
  tc->add_option("--image-size", to->model.image_resolution, "model input resolution (caption files)")->capture_default_str();
  tc->add_option("--context", to->model.context_length, "text tower context length (tokens)")->capture_default_str();
  tc->add_option("--text-width", to->model.transformer_width, "text tower width")->capture_default_str();
  tc->add_option("--text-layers", to->model.transformer_layers, "text tower layers")->capture_default_str();
  tc->add_option("--text-heads", to->model.transformer_heads, "text tower attention heads")->capture_default_str();
  tc->add_option("--eval-images", to->eval_images, "zero-shot test images per epoch (0: all)")->capture_default_str();
  st.option("--data", "data", &to->data);
  st.option("--freeze", "freeze", &to->freeze);
  st.option("--loss", "loss", &to->loss);
  st.option("--eval-images", "eval_images", &to->eval_images);
  st.negated_option("--no-augment", "augment", &ta->no_augment);
  st.config("--embed-dim", "/embed_dim", &to->model.embed_dim);
  st.config("--patch", "/vision_patch_size", &to->model.vision_patch_size);
  st.config("--vision-width", "/vision_width", &to->model.vision_width);
  st.config("--vision-layers", "/vision_layers", &to->model.vision_layers);
  st.config("--vision-heads", "/vision_heads", &to->model.vision_heads);
  st.config("--image-size", "/image_resolution", &to->model.image_resolution);
  st.config("--context", "/context_length", &to->model.context_length);
  st.config("--text-width", "/transformer_width", &to->model.transformer_width);
  st.config("--text-layers", "/transformer_layers", &to->model.transformer_layers);
  st.config("--text-heads", "/transformer_heads", &to->model.transformer_heads);
  c.on(tc, ta, run_train_clip);

  auto za = std::make_shared<EvalClipArgs>();
  auto* zs = c.eval->add_subcommand("zero-shot", "zero-shot top-1/top-5 and confusion matrix of a CLIP model");
  add_model_option(zs, &za->model, "CLIP")->required();
  add_vocab_option(zs, &za->vocab);
  zs->add_option("--data", za->data, "fashion-mnist (test set) or a folder DIR/<class>/<image>")->capture_default_str();
  zs->add_option("--labels", za->labels, "comma-separated class names (default: fashion-mnist's / the folder names)");
  add_repeatable(zs, "--template", &za->templates,
                 "prompt template with {} for the label (default: Fashion-MNIST's held-out templates, else \"a photo of a {}.\")");
  zs->add_flag("--train-templates", za->train_templates, "use the Fashion-MNIST training templates instead (for comparison)");
  zs->add_option("--limit", za->limit, "first N images only (0: all)")->capture_default_str();
  zs->add_option("--confusion", za->confusion, "confusion-matrix PNG (default: confusion_matrix.png beside the model)");
  add_json_flag(zs, &za->json);
  add_threads_option(zs, &za->threads);
  c.on(zs, za, run_eval_zero_shot);

  auto ra = std::make_shared<EvalClipArgs>();
  ra->limit = 1000;
  auto* rt = c.eval->add_subcommand("retrieval", "image->text and text->image recall@1/5/10 of a CLIP model");
  add_model_option(rt, &ra->model, "CLIP")->required();
  add_vocab_option(rt, &ra->vocab);
  rt->add_option("--data", ra->data,
                 "fashion-mnist (test images + held-out captions), a .jsonl/.csv caption set, or a folder with "
                 "test.jsonl (or test.csv)")
      ->capture_default_str();
  rt->add_option("--limit", ra->limit, "first N images only (0: all)")->capture_default_str();
  add_json_flag(rt, &ra->json);
  add_threads_option(rt, &ra->threads);
  c.on(rt, ra, run_eval_retrieval);
}

}  // namespace mmkit::cli
