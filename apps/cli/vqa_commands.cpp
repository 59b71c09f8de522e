// `mmkit train vqa`, `mmkit eval vqa`, `mmkit vqa`: visual question answering
// with co-attention fusion (models/vqa.h) on Sort-of-CLEVR (`mmkit data
// sort-of-clevr`, data_commands.cpp) or any VQA JSONL data.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/infer/vqa_answer.h"
#include "mmkit/report/vqa_attention_map.h"
#include "mmkit/eval/vqa_eval.h"
#include "mmkit/train/vqa_trainer.h"

namespace mmkit::cli {
namespace {

struct TrainVqaArgs {
  // The recipe of docs/RESULTS.md ("VQA on Sort-of-CLEVR"): train::vqa_recipe().
  TrainVqaArgs() : o(train::vqa_recipe()) {}
  train::VqaTrainOptions o;
  std::string norm = "post";  // measured better than pre-norm on a shortened run (docs/RESULTS.md)
  bool no_zero_init = false, no_film = false;
  std::shared_ptr<StoredFlags> stored;
};

int run_train_vqa(TrainVqaArgs& a) {
  a.stored->restore(a.o);
  MMKIT_CHECK(a.norm == "pre" || a.norm == "post", "--norm must be pre or post, got '", a.norm, "'");
  a.o.model.norm_first = a.norm == "pre";
  if (a.no_zero_init) a.o.model.fusion_zero_init = false;
  if (a.no_film) a.o.model.film = false;
  auto hist = train::train_vqa(a.o);
  if (int code = training_exit_code()) return code;  // interrupted; checkpoint saved
  if (!is_root_process()) return 0;                  // data-parallel: rank 0 reports
  if (!hist.empty())
    std::printf("final test accuracy %.4f (non-relational %.4f, relational %.4f) of the weights of epoch %d "
                "(selected on the validation split) after %s; model in %s/model.safetensors\n",
                hist.back().test_acc, hist.back().test_acc_non_relational, hist.back().test_acc_relational,
                hist.back().selected_epoch, plural(hist.back().epoch, "epoch").c_str(), a.o.out_dir.c_str());
  return 0;
}

struct EvalVqaArgs {
  std::string model, data, split = "test";
  bool json = false;
  int threads = 0;
  int64_t limit = 0;
};

int run_eval_vqa(const EvalVqaArgs& a) {
  set_num_threads(a.threads);
  Vqa m = load_vqa(a.model);
  std::string jsonl = a.data;
  if (jsonl.size() < 6 || jsonl.compare(jsonl.size() - 6, 6, ".jsonl") != 0) jsonl += "/" + a.split + ".jsonl";
  data::VqaDataset d = data::load_vqa_dataset(jsonl, a.limit, !a.json);
  VqaEvalResult r = evaluate_vqa(m, d, 16, !a.json);
  if (a.json) {
    nlohmann::json types = nlohmann::json::object();
    for (auto& [t, v] : r.per_type) types[t] = {{"questions", v.n}, {"accuracy", v.accuracy}};
    nlohmann::json j = {{"data", jsonl},
                        {"questions", r.n},
                        {"accuracy", r.accuracy},
                        {"loss", r.loss},
                        {"non_relational", {{"questions", r.non_relational.n}, {"accuracy", r.non_relational.accuracy}}},
                        {"relational", {{"questions", r.relational.n}, {"accuracy", r.relational.accuracy}}},
                        {"per_type", types},
                        {"seconds", r.seconds}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  // Accuracies as fractions, as every command prints them (and as --json gives them).
  std::printf("%-16s %10s %10s\n", "question type", "questions", "accuracy");
  for (auto& [t, v] : r.per_type)
    std::printf("%-16s %10lld %10.4f\n", t.empty() ? "(untyped)" : t.c_str(), (long long)v.n, v.accuracy);
  std::printf("%-16s %10lld %10.4f\n", "non-relational", (long long)r.non_relational.n, r.non_relational.accuracy);
  std::printf("%-16s %10lld %10.4f\n", "relational", (long long)r.relational.n, r.relational.accuracy);
  std::printf("%-16s %10lld %10.4f\n", "overall", (long long)r.n, r.accuracy);
  std::printf("(VQA accuracy; %s; mean loss %.4f; %.1f s)\n", jsonl.c_str(), r.loss, r.seconds);
  return 0;
}

struct AskArgs {
  std::string model, image, question, attention_map;
  bool json = false;
  int threads = 0, top_k = kDefaultTopK;
};

int run_ask(const AskArgs& a) {
  set_num_threads(a.threads);
  Vqa m = load_vqa(a.model);
  if (QuestionProblem p = check_question(m, a.question)) fail(p.message);  // before reading the image
  Image img = decode_image_file(a.image);
  std::vector<PatchAttention> maps;
  VqaAnswer ans = answer_question(m, img, a.question, a.attention_map.empty() ? nullptr : &maps, a.top_k);
  if (!a.attention_map.empty()) make_parent_dirs(a.attention_map);
  if (!a.attention_map.empty()) write_attention_map(a.attention_map, img, maps, a.question, ans.answer, ans.probability);
  if (a.json) {
    nlohmann::json top = nlohmann::json::array();
    for (auto& [s, p] : ans.top) top.push_back({{"answer", s}, {"probability", p}});
    nlohmann::json j = {{"image", a.image}, {"question", a.question}, {"answer", ans.answer},
                        {"probability", ans.probability}, {"top", top}};
    if (!a.attention_map.empty()) j["attention_map"] = a.attention_map;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s\t(p = %.3f)\n", ans.answer.c_str(), double(ans.probability));
    for (size_t i = 1; i < ans.top.size(); ++i)
      std::printf("  %s\t%.3f\n", ans.top[i].first.c_str(), double(ans.top[i].second));
    if (!a.attention_map.empty()) std::printf("attention map: %s\n", a.attention_map.c_str());
  }
  return 0;
}

}  // namespace

void add_vqa_commands(Cli& c) {
  // ---- train vqa
  auto ta = std::make_shared<TrainVqaArgs>();
  train::VqaTrainOptions& o = ta->o;
  VqaConfig& mc = o.model;
  auto* tv = c.train->add_subcommand("vqa", "train a VQA model (co-attention fusion) on VQA JSONL data");
  ta->stored = add_train_options(tv, &o, {"--batch", "images per step, each with all its questions", "linear warmup steps (-1: half an epoch)", "images"});
  StoredFlags& st = *ta->stored;
  tv->add_option("--data", o.data_dir,
                 "folder with train.jsonl and test.jsonl (e.g. from `mmkit data sort-of-clevr`), or a training JSONL file")
      ->required();
  tv->add_option("--test-data", o.test_data, "held-out JSONL file evaluated after each epoch (default: test.jsonl in the --data folder)");
  tv->add_option("--top-k-answers", o.top_k_answers, "answer vocabulary: the K most frequent training answers")
      ->capture_default_str();
  tv->add_option("--patch", mc.patch_size, "image patch size (tokens = (image/patch)^2)")->capture_default_str();
  tv->add_option("--stem-patch", mc.stem_patch, "conv stem kernel = stride (0: no stem)")->capture_default_str();
  tv->add_option("--stem-dim", mc.stem_dim, "conv stem channels")->capture_default_str();
  tv->add_option("--dim", mc.dim, "transformer width")->capture_default_str();
  tv->add_option("--heads", mc.heads, "attention heads")->capture_default_str();
  tv->add_option("--mlp-dim", mc.mlp_dim, "feed-forward width")->capture_default_str();
  tv->add_option("--image-layers", mc.image_layers, "image-only transformer layers")->capture_default_str();
  tv->add_option("--text-layers", mc.text_layers, "question-only transformer layers")->capture_default_str();
  tv->add_option("--fusion-layers", mc.fusion_layers, "co-attention fusion layers")->capture_default_str();
  tv->add_option("--norm", ta->norm, kNormHelp)  // post: measured better for VQA (docs/RESULTS.md)
      ->capture_default_str();
  tv->add_option("--dropout", mc.dropout, "dropout probability")->capture_default_str();
  tv->add_flag("--no-zero-init", ta->no_zero_init, "random-init fusion residual branches (default: zero)");
  tv->add_flag("--no-film", ta->no_film, "no FiLM conditioning of the conv stem on the question (default: FiLM)");
  tv->add_option("--non-relational-epochs", o.non_relational_epochs,
                 "curriculum: the first N epochs train on non-relational questions only")
      ->capture_default_str();
  tv->add_option("--val-images", o.val_images,
                 "validation split: the last N training images, evaluated each epoch to select the saved "
                 "weights (-1: 5% of them; 0: none, the test split every epoch)")
      ->capture_default_str();
  tv->add_option("--relation-dim", mc.relation_dim,
                 "width of a relation network over the fused image tokens (0: none)")
      ->capture_default_str();
  tv->add_option("--relation-layers", mc.relation_layers, "layers of the relation network's pair MLP")
      ->capture_default_str();
  tv->add_option("--relation-heads", mc.relation_heads,
                 "attention pooling heads over the relation network's pairs (0: mean only)")
      ->capture_default_str();
  tv->add_option("--relation-geometry", mc.relation_geometry,
                 "learned projections whose pairwise squared differences enter the relation network (0: none)")
      ->capture_default_str();
  tv->add_flag("--relation-coords", mc.relation_coords, "append cell coordinates to the relation network's tokens");
  tv->add_option("--hop-heads", mc.hop_heads,
                 "heads of two-hop spatial attention over the stem cells (find X, then the cell nearest to / "
                 "furthest from it; 0: none)")
      ->capture_default_str();
  tv->add_option("--hop-channels", mc.hop_channels, "width of the hop attention's local features")
      ->capture_default_str();
  tv->add_option("--hop-cells", mc.hop_cells,
                 "cells the hop attention reads: film (question-conditioned, per question) or image (per image)")
      ->capture_default_str();
  tv->add_option("--hop-count", mc.hop_count, "width of the hop attention's count readout (0: none)")
      ->capture_default_str();
  tv->add_option("--hop-exclude", mc.hop_exclude,
                 "hop 2 skips the cells hop 1 found, weight k (logits - k P a1; 0: off)")
      ->capture_default_str();
  tv->add_flag("--hop-find-words", mc.hop_find_words,
              "hop 1's query from an attention over the question's word embeddings (not the pooled question)");
  tv->add_flag("--hop-dist-pool", mc.hop_dist_pool,
              "distance pooling over the count cells: nearest / furthest distance per count channel");
  tv->add_option("--hop-beta-scale", mc.hop_beta_scale, "hop 2's distance weight beta = scale * theta")
      ->capture_default_str();
  tv->add_option("--hop-relate-scale", mc.hop_relate_scale, "scale of hop 2's content logits")
      ->capture_default_str();
  tv->add_option("--image-pool", mc.image_pool, "image stream -> head: flatten (position-specific linear), max or mean")
      ->capture_default_str();
  st.option("--top-k-answers", "top_k_answers", &o.top_k_answers);
  st.option("--non-relational-epochs", "non_relational_epochs", &o.non_relational_epochs);
  st.option("--val-images", "val_images", &o.val_images);
  st.config("--patch", "/patch_size", &mc.patch_size);
  st.config("--stem-patch", "/stem_patch", &mc.stem_patch);
  st.config("--stem-dim", "/stem_dim", &mc.stem_dim);
  st.config("--dim", "/dim", &mc.dim);
  st.config("--heads", "/heads", &mc.heads);
  st.config("--mlp-dim", "/mlp_dim", &mc.mlp_dim);
  st.config("--image-layers", "/image_layers", &mc.image_layers);
  st.config("--text-layers", "/text_layers", &mc.text_layers);
  st.config("--fusion-layers", "/fusion_layers", &mc.fusion_layers);
  st.config("--dropout", "/dropout", &mc.dropout);
  st.config("--relation-dim", "/relation_dim", &mc.relation_dim);
  st.config("--relation-layers", "/relation_layers", &mc.relation_layers);
  st.config("--relation-heads", "/relation_heads", &mc.relation_heads);
  st.config("--relation-geometry", "/relation_geometry", &mc.relation_geometry);
  st.config("--relation-coords", "/relation_coords", &mc.relation_coords);
  st.config("--hop-heads", "/hop_heads", &mc.hop_heads);
  st.config("--hop-channels", "/hop_channels", &mc.hop_channels);
  st.config("--hop-cells", "/hop_cells", &mc.hop_cells);
  st.config("--hop-count", "/hop_count", &mc.hop_count);
  st.config("--hop-exclude", "/hop_exclude", &mc.hop_exclude);
  st.config("--hop-find-words", "/hop_find_words", &mc.hop_find_words);
  st.config("--hop-dist-pool", "/hop_dist_pool", &mc.hop_dist_pool);
  st.config("--hop-beta-scale", "/hop_beta_scale", &mc.hop_beta_scale);
  st.config("--hop-relate-scale", "/hop_relate_scale", &mc.hop_relate_scale);
  st.config("--image-pool", "/image_pool", &mc.image_pool);
  TrainVqaArgs* tap = ta.get();
  st.config_as("--norm", "/norm_first", [tap] { return nlohmann::json(tap->norm == "pre"); });
  st.config_as("--no-film", "/film", [tap] { return nlohmann::json(!tap->no_film); });
  c.on(tv, ta, run_train_vqa);

  // ---- eval vqa
  auto ea = std::make_shared<EvalVqaArgs>();
  auto* ev = c.eval->add_subcommand("vqa", "VQA accuracy per question type");
  add_model_option(ev, &ea->model, "VQA")->required();
  ev->add_option("--data", ea->data, "data folder (uses SPLIT.jsonl) or a .jsonl file")->required();
  ev->add_option("--split", ea->split, "train or test")->capture_default_str();
  ev->add_option("--limit", ea->limit, "first N images only (0: all)")->capture_default_str();
  add_json_flag(ev, &ea->json);
  add_threads_option(ev, &ea->threads);
  c.on(ev, ea, run_eval_vqa);

  // ---- vqa (ask one question)
  auto aa = std::make_shared<AskArgs>();
  auto* av = c.app->add_subcommand("vqa", "answer a question about an image");
  add_model_option(av, &aa->model, "VQA")->required();
  av->add_option("--image", aa->image, "PNG or JPEG file")->required();
  av->add_option("--question", aa->question, "the question, in words the model was trained on")->required();
  av->add_option("--attention-map", aa->attention_map,
                 "write a PNG of where the answer looked (text->image attention; default: none)");
  add_top_k_option(av, &aa->top_k);
  add_json_flag(av, &aa->json);
  add_threads_option(av, &aa->threads);
  c.on(av, aa, run_ask);
}

}  // namespace mmkit::cli
