// `mmkit train vit`, `mmkit eval vit`, `mmkit classify`: the ViT classifier
// on Fashion-MNIST (or any IDX set) and on foreign ViT checkpoints.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/infer/classify.h"
#include "mmkit/report/plots.h"
#include "mmkit/eval/vit_eval.h"
#include "mmkit/train/vit_trainer.h"

namespace mmkit::cli {
namespace {

struct TrainVitArgs {
  train::VitTrainOptions o;
  bool no_augment = false, no_flip = false;
  std::string norm = "post";
  std::shared_ptr<StoredFlags> stored;
};

// --norm pre|post (the VQA trainer's flag too) -> norm_first.
bool norm_first_of(const std::string& norm) {
  MMKIT_CHECK(norm == "pre" || norm == "post", "--norm must be pre or post, got '", norm, "'");
  return norm == "pre";
}

int run_train_vit(TrainVitArgs& a) {
  train::VitTrainOptions& o = a.o;
  a.stored->restore(o);
  o.augment = !a.no_augment;
  o.aug_flip = !a.no_flip;
  o.model.norm_first = norm_first_of(a.norm);
  o.data_dir = data_dir(o.data_dir);
  auto hist = train::train_vit(o);
  if (int code = training_exit_code()) return code;  // interrupted; checkpoint saved
  if (!is_root_process()) return 0;                  // data-parallel: rank 0 reports
  if (!hist.empty())
    std::printf("final test accuracy %.4f after %s; model in %s/model.safetensors\n", hist.back().test_acc,
                plural(hist.back().epoch, "epoch").c_str(), o.out_dir.c_str());
  return 0;
}

struct EvalVitArgs {
  std::string model, data = "fashion-mnist", confusion;
  bool json = false;
  int threads = 0;
  int64_t limit = 0;
};

int run_eval_vit(const EvalVitArgs& a) {
  set_num_threads(a.threads);
  Vit vit = load_vit(a.model);
  data::ImageSet test = data::first_images(data::load_fashion_mnist(data_dir(a.data), "test"), a.limit);
  VitEvalResult r = evaluate_vit(vit, test, 500, !a.json);
  std::string confusion_png = a.confusion.empty() ? model_dir(a.model) + "/confusion_matrix.png" : a.confusion;
  make_parent_dirs(confusion_png);
  std::vector<std::string> names = vit.cfg.class_names;
  if (names.empty())
    for (int64_t k = 0; k < vit.cfg.num_classes; ++k) names.push_back(std::to_string(k));
  plot_confusion_matrix(confusion_png, r.confusion, names, "ViT on Fashion-MNIST test set");
  if (a.json) {
    nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss},      {"images", r.n},
                        {"confusion", r.confusion}, {"classes", names}, {"confusion_png", confusion_png}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("test accuracy %.4f (%lld images), mean loss %.4f\nconfusion matrix: %s\n",
                r.accuracy, (long long)r.n, r.loss, confusion_png.c_str());
  }
  return 0;
}

struct ClassifyArgs {
  std::string model, preprocess, labels;
  std::vector<std::string> files;
  bool json = false;
  int threads = 0, top_k = kDefaultTopK;
  int64_t heads = 0;
};

int run_classify(const ClassifyArgs& a) {
  set_num_threads(a.threads);
  Vit vit = load_vit(a.model, a.heads);
  if (!a.labels.empty()) vit.cfg.class_names = read_label_file(a.labels, vit.cfg.num_classes);
  if (!a.preprocess.empty()) vit.cfg.preprocess = a.preprocess == "none" ? "" : a.preprocess;
  std::vector<Image> images;
  for (auto& f : a.files) images.push_back(decode_image_file(f));
  auto res = classify_images(vit, images);
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < a.files.size(); ++i) {
    const Classification& c = res[i];
    const std::vector<size_t> order = top_classes(c, a.top_k);
    auto name = [&](size_t k) { return k < vit.cfg.class_names.size() ? vit.cfg.class_names[k] : std::to_string(k); };
    if (a.json) {
      nlohmann::json top = nlohmann::json::array();
      for (size_t k : order) top.push_back({{"label", name(k)}, {"probability", c.probs[k]}});
      arr.push_back({{"image", a.files[i]}, {"label", c.name}, {"index", c.label}, {"probability", c.probability},
                     {"top", top}, {"probs", c.probs}, {"logits", c.logits}});
    } else {
      std::printf("%s\t%s\t%.3f\n", a.files[i].c_str(), c.name.c_str(), c.probability);
      for (size_t j = 1; j < order.size(); ++j) std::printf("  %s\t%.3f\n", name(order[j]).c_str(), c.probs[order[j]]);
    }
  }
  if (a.json) std::cout << arr.dump() << "\n";
  if (!a.json && vit.cfg.class_names.empty())
    std::fprintf(stderr, "classify: %s stores no class names; pass --labels FILE (one per line)\n", a.model.c_str());
  return 0;
}

}  // namespace

void add_vit_commands(Cli& c) {
  // ---- train vit
  auto ta = std::make_shared<TrainVitArgs>();
  train::VitTrainOptions& to = ta->o;
  to.data_dir = "fashion-mnist";
  auto* tv = c.train->add_subcommand("vit", "train a Vision Transformer classifier");
  ta->stored = add_train_options(tv, &to);
  StoredFlags& st = *ta->stored;
  tv->add_option("--data", to.data_dir, "fashion-mnist (Debian package) or a folder of IDX files")
      ->capture_default_str();
  tv->add_option("--label-smoothing", to.label_smoothing, "cross-entropy label smoothing")->capture_default_str();
  tv->add_flag("--no-augment", ta->no_augment, "no random shifts and flips");
  tv->add_option("--aug-shift", to.aug_shift, "max random shift in pixels")->capture_default_str();
  tv->add_flag("--no-flip", ta->no_flip, "no random horizontal flips");
  tv->add_option("--patch", to.model.patch_size, "patch size in pixels")->capture_default_str();
  tv->add_option("--dim", to.model.dim, "transformer width")->capture_default_str();
  tv->add_option("--depth", to.model.depth, "transformer layers")->capture_default_str();
  tv->add_option("--heads", to.model.heads, "attention heads")->capture_default_str();
  tv->add_option("--mlp-dim", to.model.mlp_dim, "feed-forward width")->capture_default_str();
  tv->add_option("--dropout", to.model.dropout, "dropout probability")->capture_default_str();
  tv->add_option("--norm", ta->norm, kNormHelp)
      ->capture_default_str();
  st.option("--label-smoothing", "label_smoothing", &to.label_smoothing);
  st.negated_option("--no-augment", "augment", &ta->no_augment);
  st.option("--aug-shift", "aug_shift", &to.aug_shift);
  st.negated_option("--no-flip", "aug_flip", &ta->no_flip);
  st.config("--patch", "/patch_size", &to.model.patch_size);
  st.config("--dim", "/dim", &to.model.dim);
  st.config("--depth", "/depth", &to.model.depth);
  st.config("--heads", "/heads", &to.model.heads);
  st.config("--mlp-dim", "/mlp_dim", &to.model.mlp_dim);
  st.config("--dropout", "/dropout", &to.model.dropout);
  TrainVitArgs* tap = ta.get();
  st.config_as("--norm", "/norm_first", [tap] { return nlohmann::json(tap->norm == "pre"); });
  c.on(tv, ta, run_train_vit);

  // ---- eval vit
  auto ea = std::make_shared<EvalVitArgs>();
  auto* ev = c.eval->add_subcommand("vit", "test accuracy and confusion matrix of a ViT");
  add_model_option(ev, &ea->model, "ViT")->required();
  ev->add_option("--data", ea->data, "fashion-mnist or a folder of IDX files")->capture_default_str();
  ev->add_option("--limit", ea->limit, "first N images only (0: all)")->capture_default_str();
  ev->add_option("--confusion", ea->confusion, "confusion-matrix PNG (default: confusion_matrix.png beside the model)");
  add_json_flag(ev, &ea->json);
  add_threads_option(ev, &ea->threads);
  c.on(ev, ea, run_eval_vit);

  // ---- classify
  auto ca = std::make_shared<ClassifyArgs>();
  auto* cl = c.app->add_subcommand("classify", "label image files with a ViT classifier");
  add_model_option(cl, &ca->model, "ViT")->required();
  cl->add_option("images", ca->files, "PNG or JPEG files")->required();
  cl->add_option("--labels", ca->labels,
                 "class names, one per line in class order (default: the names stored in the model, else indices)");
  add_top_k_option(cl, &ca->top_k);
  add_json_flag(cl, &ca->json);
  cl->add_option("--preprocess", ca->preprocess, "imagenet, clip or none (default: the model's own)");
  cl->add_option("--heads", ca->heads, "attention heads, for checkpoints that do not record them (torchvision; 0: from the file)")
      ->capture_default_str();
  add_threads_option(cl, &ca->threads);
  c.on(cl, ca, run_classify);
}

}  // namespace mmkit::cli
