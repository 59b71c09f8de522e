// `mmkit train vit`, `mmkit eval vit`, `mmkit classify`: the ViT classifier
// on Fashion-MNIST (or any IDX set) and on foreign ViT checkpoints.
#include <cstdio>
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
};

int run_train_vit(TrainVitArgs& a) {
  train::VitTrainOptions& o = a.o;
  o.augment = !a.no_augment;
  o.aug_flip = !a.no_flip;
  o.data_dir = data_dir(o.data_dir);
  auto hist = train::train_vit(o);
  if (int code = training_exit_code()) return code;  // interrupted; checkpoint saved
  if (!is_root_process()) return 0;                  // data-parallel: rank 0 reports
  if (!hist.empty())
    std::printf("final test accuracy %.4f after %d epochs; model in %s/model.safetensors\n",
                hist.back().test_acc, hist.back().epoch, o.out_dir.c_str());
  return 0;
}

struct EvalVitArgs {
  std::string model, data = "fashion-mnist", confusion;
  bool json = false;
  int threads = 0;
};

int run_eval_vit(const EvalVitArgs& a) {
  set_num_threads(a.threads);
  Vit vit = load_vit(a.model);
  data::ImageSet test = data::load_fashion_mnist(data_dir(a.data), "test");
  VitEvalResult r = evaluate_vit(vit, test, 500, !a.json);
  std::string confusion_png = a.confusion.empty() ? model_dir(a.model) + "/confusion_matrix.png" : a.confusion;
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
  std::string model, preprocess;
  std::vector<std::string> files;
  bool json = false;
  int threads = 0;
  int64_t heads = 0;
};

int run_classify(const ClassifyArgs& a) {
  set_num_threads(a.threads);
  Vit vit = load_vit(a.model, a.heads);
  if (!a.preprocess.empty()) vit.cfg.preprocess = a.preprocess == "none" ? "" : a.preprocess;
  std::vector<Image> images;
  for (auto& f : a.files) images.push_back(decode_image_file(f));
  auto res = classify_images(vit, images);
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < a.files.size(); ++i) {
    if (a.json) {
      arr.push_back({{"image", a.files[i]}, {"label", res[i].name}, {"index", res[i].label},
                     {"probability", res[i].probability}, {"probs", res[i].probs},
                     {"logits", res[i].logits}});
    } else {
      std::printf("%s\t%s\t%.3f\n", a.files[i].c_str(), res[i].name.c_str(), res[i].probability);
    }
  }
  if (a.json) std::cout << arr.dump() << "\n";
  return 0;
}

}  // namespace

void add_vit_commands(Cli& c) {
  // ---- train vit
  auto ta = std::make_shared<TrainVitArgs>();
  train::VitTrainOptions& to = ta->o;
  to.data_dir = "fashion-mnist";
  auto* tv = c.train->add_subcommand("vit", "train a Vision Transformer classifier");
  add_train_options(tv, &to);
  tv->add_option("--data", to.data_dir, "fashion-mnist (Debian package) or a directory of IDX files")
      ->capture_default_str();
  tv->add_option("--label-smoothing", to.label_smoothing)->capture_default_str();
  tv->add_flag("--no-augment", ta->no_augment, "disable random shifts and flips");
  tv->add_option("--aug-shift", to.aug_shift, "max random shift in pixels")->capture_default_str();
  tv->add_flag("--no-flip", ta->no_flip, "no random horizontal flips");
  tv->add_option("--patch", to.model.patch_size)->capture_default_str();
  tv->add_option("--dim", to.model.dim)->capture_default_str();
  tv->add_option("--depth", to.model.depth)->capture_default_str();
  tv->add_option("--heads", to.model.heads)->capture_default_str();
  tv->add_option("--mlp-dim", to.model.mlp_dim)->capture_default_str();
  tv->add_option("--dropout", to.model.dropout)->capture_default_str();
  tv->add_flag("--norm-first", to.model.norm_first, "pre-norm blocks + final LayerNorm (default: post-norm)");
  c.on(tv, ta, run_train_vit);

  // ---- eval vit
  auto ea = std::make_shared<EvalVitArgs>();
  auto* ev = c.eval->add_subcommand("vit", "test accuracy and confusion matrix of a ViT");
  ev->add_option("--model", ea->model, "model directory or .safetensors file")->required();
  ev->add_option("--data", ea->data, "fashion-mnist or a directory of IDX files")->capture_default_str();
  ev->add_option("--confusion", ea->confusion, "confusion-matrix PNG (default: MODEL_DIR/confusion_matrix.png)");
  ev->add_flag("--json", ea->json, "print JSON");
  add_threads_option(ev, &ea->threads);
  c.on(ev, ea, run_eval_vit);

  // ---- classify
  auto ca = std::make_shared<ClassifyArgs>();
  auto* cl = c.app->add_subcommand("classify", "label image files with a ViT classifier");
  cl->add_option("--model", ca->model, "model directory or .safetensors file")->required();
  cl->add_option("images", ca->files, "PNG or JPEG files")->required();
  cl->add_flag("--json", ca->json, "print JSON");
  cl->add_option("--preprocess", ca->preprocess, "imagenet, clip or none (default: the model's own)");
  cl->add_option("--heads", ca->heads, "attention heads, for checkpoints that do not record them (torchvision)");
  add_threads_option(cl, &ca->threads);
  c.on(cl, ca, run_classify);
}

}  // namespace mmkit::cli
