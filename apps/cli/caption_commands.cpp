// `mmkit train caption`, `mmkit eval caption`, `mmkit caption`: the image
// captioner (models/captioner.h) on Sort-of-CLEVR captions (`mmkit data
// soc-captions`, data_commands.cpp) or any image-caption JSONL (data/caption_jsonl.h).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/report/attention_map.h"
#include "mmkit/infer/caption_images.h"
#include "mmkit/eval/caption_eval.h"
#include "mmkit/train/caption_trainer.h"
#include "mmkit/util/stop_signal.h"
#include "mmkit/util/file_util.h"

namespace mmkit::cli {
namespace {

struct TrainCaptionArgs {
  train::CaptionTrainOptions o;
  bool untied = false;
};

int run_train_caption(TrainCaptionArgs& a) {
  a.o.model.decoder.tie_embeddings = !a.untied;
  auto t0 = std::chrono::steady_clock::now();
  auto hist = train::train_captioner(a.o);
  if (int code = training_exit_code()) return code;  // interrupted; checkpoint saved
  if (!is_root_process()) return 0;                  // data-parallel: rank 0 reports
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!hist.empty())
    std::printf("done after %d epochs in %.1f s (wall, this run); greedy object F1 %.4f, BLEU-4 %.4f on the "
                "validation images; model in %s/model.safetensors\n",
                hist.back().epoch, wall, hist.back().val_object_f1, hist.back().val_bleu4, a.o.out_dir.c_str());
  return 0;
}

struct EvalCaptionArgs {
  std::string model, data;
  int beam = 5;
  float length_penalty = 0.6f;
  int64_t limit = 0;
  bool json = false;
  int threads = 0;
};

nlohmann::json result_json(const CaptionEvalResult& r) {
  nlohmann::json j = {{"bleu", {r.bleu.bleu[0], r.bleu.bleu[1], r.bleu.bleu[2], r.bleu.bleu[3]}},
                      {"brevity_penalty", r.bleu.brevity_penalty},
                      {"cider_d", r.cider_d},
                      {"seconds", r.seconds},
                      {"images_per_s", r.seconds > 0 ? double(r.images) / r.seconds : 0.0}};
  if (r.has_objects)
    j["object"] = {{"f1", r.objects.f1}, {"precision", r.objects.precision}, {"recall", r.objects.recall}};
  return j;
}

int run_eval_caption(const EvalCaptionArgs& a) {
  set_num_threads(a.threads);
  CaptionModel m = load_captioner(a.model);
  // A directory means its held-out split.
  const std::string jsonl = is_directory(a.data) ? a.data + "/test.jsonl" : a.data;
  data::CaptionData d = data::load_caption_data(jsonl, m.model.cfg.vision.image_size, m.model.cfg.vision.channels,
                                                  a.limit, !a.json);
  GenerateOptions greedy;
  auto rg = evaluate_captions(m.model, m.vocab, d, greedy, 0, !a.json);
  std::vector<std::pair<std::string, CaptionEvalResult>> cols = {{"greedy", rg}};
  if (a.beam > 1) {
    GenerateOptions beam;
    beam.beam = a.beam;
    beam.length_penalty = a.length_penalty;
    char name[64];
    std::snprintf(name, sizeof name, "beam %d (alpha %.2g)", a.beam, double(a.length_penalty));
    cols.push_back({name, evaluate_captions(m.model, m.vocab, d, beam, 0, !a.json)});
  }
  if (a.json) {
    nlohmann::json j = {{"images", d.n()}, {"data", jsonl}, {"greedy", result_json(rg)}};
    if (cols.size() > 1) {
      j["beam"] = result_json(cols[1].second);
      j["beam"]["width"] = a.beam;
      j["beam"]["length_penalty"] = a.length_penalty;
    }
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("%s: %lld images, model %s\n\n", jsonl.c_str(), (long long)d.n(), a.model.c_str());
  std::printf("%-16s", "metric");
  for (auto& c : cols) std::printf(" %20s", c.first.c_str());
  std::printf("\n");
  auto row = [&](const char* name, auto get, const char* fmt) {
    std::printf("%-16s", name);
    for (auto& c : cols) {
      char buf[32];
      std::snprintf(buf, sizeof buf, fmt, get(c.second));
      std::printf(" %20s", buf);
    }
    std::printf("\n");
  };
  for (int n = 0; n < 4; ++n) {
    char name[16];
    std::snprintf(name, sizeof name, "BLEU-%d", n + 1);
    row(name, [n](const CaptionEvalResult& r) { return r.bleu.bleu[n]; }, "%.4f");
  }
  row("CIDEr-D", [](const CaptionEvalResult& r) { return r.cider_d; }, "%.4f");
  if (rg.has_objects) {
    row("object F1", [](const CaptionEvalResult& r) { return r.objects.f1; }, "%.4f");
    row("  precision", [](const CaptionEvalResult& r) { return r.objects.precision; }, "%.4f");
    row("  recall", [](const CaptionEvalResult& r) { return r.objects.recall; }, "%.4f");
  }
  row("images/s", [](const CaptionEvalResult& r) { return r.seconds > 0 ? double(r.images) / r.seconds : 0.0; },
      "%.1f");
  std::printf("\nexamples (greedy | %s):\n", cols.back().first.c_str());
  for (int64_t i = 0; i < std::min<int64_t>(3, d.n()); ++i)
    std::printf("  %s\n    %s\n    %s\n", d.examples[size_t(i)].image.c_str(), rg.captions[size_t(i)].c_str(),
                cols.back().second.captions[size_t(i)].c_str());
  return 0;
}

struct CaptionArgs {
  std::string model, attention_map;
  std::vector<std::string> files;
  int beam = 1;
  float length_penalty = 0.6f;
  int64_t max_tokens = 0;
  bool json = false;
  int threads = 0;
};

// out.png -> out_3.png when several images are captioned.
std::string numbered(const std::string& path, size_t i, size_t n) {
  if (n == 1) return path;
  size_t dot = path.find_last_of('.');
  size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) dot = path.size();
  return path.substr(0, dot) + "_" + std::to_string(i) + path.substr(dot);
}

int run_caption(const CaptionArgs& a) {
  set_num_threads(a.threads);
  CaptionModel m = load_captioner(a.model);
  GenerateOptions g;
  g.beam = a.beam;
  g.length_penalty = a.length_penalty;
  g.max_tokens = a.max_tokens;
  g.attention = !a.attention_map.empty();
  check_generate_options(m.model, g);  // option errors before reading the images
  std::vector<Image> images;
  for (auto& f : a.files) images.push_back(decode_image_file(f));
  std::vector<ImageCaption> caps = caption_images(m, images, g);
  nlohmann::json arr = nlohmann::json::array();
  const VitConfig& v = m.model.cfg.vision;
  for (size_t i = 0; i < caps.size(); ++i) {
    const std::string& text = caps[i].text;
    const GeneratedCaption& c = caps[i].gen;
    std::string png;
    if (!a.attention_map.empty()) {
      png = numbered(a.attention_map, i, caps.size());
      std::vector<std::string> words;
      for (int32_t t : c.tokens) words.push_back(m.vocab.word(t));
      if (c.finished) words.push_back("<eos>");
      plot_caption_attention(png, images[i], words, c.attention, int(v.image_size / v.patch_size), true,
                             a.files[i] + ": " + text);
    }
    if (a.json) {
      nlohmann::json j = {{"image", a.files[i]}, {"caption", text}, {"log_prob", c.log_prob},
                          {"score", c.score}, {"finished", c.finished}};
      if (!png.empty()) j["attention_map"] = png;
      arr.push_back(j);
    } else {
      std::printf("%s\t%s\n", a.files[i].c_str(), text.c_str());
      std::fflush(stdout);
      if (!png.empty()) std::fprintf(stderr, "cross-attention maps: %s\n", png.c_str());
    }
  }
  if (a.json) std::cout << arr.dump() << "\n";
  return 0;
}

}  // namespace

void add_caption_commands(Cli& c) {
  // ---- train caption
  auto ta = std::make_shared<TrainCaptionArgs>();
  train::CaptionTrainOptions& o = ta->o;
  VitConfig& vc = o.model.vision;
  CaptionDecoderConfig& dc = o.model.decoder;
  // Defaults: the model of docs/RESULTS.md ("Captioning on Sort-of-CLEVR").
  vc.image_size = 0;  // from the data
  vc.patch_size = 15;
  vc.dim = 128;
  vc.depth = 3;
  vc.heads = 4;
  vc.mlp_dim = 256;
  vc.num_classes = 0;
  vc.norm_first = true;
  dc.dim = 128;
  dc.depth = 2;
  dc.heads = 4;
  dc.mlp_dim = 256;
  dc.max_len = 0;  // from the data
  dc.norm_first = true;
  auto* tc = c.train->add_subcommand("caption", "train an image captioner (ViT encoder + Transformer decoder)");
  add_train_options(tc, &o);
  tc->add_option("--data", o.data_dir, "directory with train.jsonl and test.jsonl (e.g. from `mmkit data soc-captions`)")
      ->required();
  tc->add_option("--label-smoothing", o.label_smoothing)->capture_default_str();
  tc->add_option("--channels", o.channels, "3: RGB input, 1: gray")->capture_default_str()->check(CLI::IsMember({1, 3}));
  tc->add_option("--image-size", vc.image_size, "input size (0: the first training image's width)")->capture_default_str();
  tc->add_option("--patch", vc.patch_size)->capture_default_str();
  tc->add_option("--dim", vc.dim, "ViT width")->capture_default_str();
  tc->add_option("--depth", vc.depth, "ViT layers")->capture_default_str();
  tc->add_option("--heads", vc.heads, "ViT heads")->capture_default_str();
  tc->add_option("--mlp-dim", vc.mlp_dim, "ViT feed-forward width")->capture_default_str();
  tc->add_option("--dec-dim", dc.dim, "decoder width")->capture_default_str();
  tc->add_option("--dec-depth", dc.depth, "decoder layers")->capture_default_str();
  tc->add_option("--dec-heads", dc.heads, "decoder heads")->capture_default_str();
  tc->add_option("--dec-mlp-dim", dc.mlp_dim, "decoder feed-forward width")->capture_default_str();
  tc->add_option("--max-len", dc.max_len, "decoder positions (0: longest training caption + 2)")->capture_default_str();
  tc->add_option("--dropout", dc.dropout, "decoder dropout")->capture_default_str();
  tc->add_flag("--untied", ta->untied, "separate LM head weight (default: tied to the token embedding)");
  tc->add_option("--val-images", o.val_images, "test images captioned (greedy) after each epoch")->capture_default_str();
  c.on(tc, ta, run_train_caption);

  // ---- eval caption
  auto ea = std::make_shared<EvalCaptionArgs>();
  auto* ec = c.eval->add_subcommand("caption", "BLEU-1..4, CIDEr-D and object F1 of a captioner, greedy vs beam");
  ec->add_option("--model", ea->model, "model directory or .safetensors file")->required();
  ec->add_option("--data", ea->data, "directory with test.jsonl, or a caption JSONL file")->required();
  ec->add_option("--beam", ea->beam, "beam width of the second column (1: greedy only)")->capture_default_str();
  ec->add_option("--length-penalty", ea->length_penalty, "GNMT length penalty alpha for beam search")
      ->capture_default_str();
  ec->add_option("--limit", ea->limit, "evaluate the first N images only")->capture_default_str();
  ec->add_flag("--json", ea->json, "print JSON");
  add_threads_option(ec, &ea->threads);
  c.on(ec, ea, run_eval_caption);

  // ---- caption
  auto ca = std::make_shared<CaptionArgs>();
  auto* cc = c.app->add_subcommand("caption", "caption image files with a trained captioner");
  cc->add_option("--model", ca->model, "model directory or .safetensors file")->required();
  cc->add_option("images", ca->files, "PNG or JPEG files")->required();
  cc->add_option("--beam", ca->beam, "beam width (1: greedy)")->capture_default_str();
  cc->add_option("--length-penalty", ca->length_penalty, "GNMT length penalty alpha")->capture_default_str();
  cc->add_option("--max-tokens", ca->max_tokens, "most generated tokens, EOS included (0: the model's max_len)")
      ->capture_default_str();
  cc->add_option("--attention-map", ca->attention_map,
                 "PNG of the cross-attention per generated word (several images: NAME_0.png, NAME_1.png, ...)");
  cc->add_flag("--json", ca->json, "print JSON");
  add_threads_option(cc, &ca->threads);
  c.on(cc, ca, run_caption);
}

}  // namespace mmkit::cli
