#include "mmkit/train/clip_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/augment.h"
#include "mmkit/data/batcher.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/data/image_text_dataset.h"
#include "mmkit/eval/clip_runner.h"
#include "mmkit/eval/plots.h"
#include "mmkit/eval/zero_shot_eval.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/models/clip_export.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/util/stop_signal.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::train {

ClipConfig fmnist_clip_config() {
  ClipConfig c;
  c.embed_dim = 128;
  c.image_resolution = 28;
  c.vision_patch_size = 4;  // 7x7 patches + class token
  c.vision_width = 128;
  c.vision_layers = 4;
  c.vision_heads = 4;
  c.context_length = 32;  // captions are short; position embeddings [32, 128]
  c.vocab_size = 0;       // set from the tokenizer
  c.transformer_width = 128;
  c.transformer_layers = 3;
  c.transformer_heads = 4;
  c.activation = "gelu";
  return c;
}

void fmnist_to_clip_pixels(const data::ImageSet& set, const int64_t* idx, int64_t n, float* out) {
  const PreprocessConfig pre = preprocess_preset("clip", int(set.rows));
  const int64_t HW = set.rows * set.cols;
  MMKIT_CHECK(set.channels == 1, "Fashion-MNIST images should be gray, got ", set.channels, " channels");
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = set.image(idx[i]);
    for (int c = 0; c < 3; ++c) {
      float* o = out + (i * 3 + c) * HW;
      for (int64_t p = 0; p < HW; ++p) o[p] = (float(src[p]) / 255.f - pre.mean[size_t(c)]) / pre.std[size_t(c)];
    }
  }
}

float clip_train_step(Graph& g, Clip& clip, AdamW& opt, const Tensor& pixels, const Tensor& ids, float lr,
                      float clip_grad, Tensor* logits) {
  // Gradients are zero on entry: the optimizer starts with zeroed buffers
  // and every step below zeroes each gradient as it reads it (fused with the
  // clipping scale into AdamW's one pass; a separate zero_grad pass would
  // rewrite all ~600 MB of ViT-B/32 gradients again).
  g.reset();
  Var img = clip_encode_image(g, clip, g.constant(pixels));
  Var txt = clip_encode_text(g, clip, ids);
  Var loss = ag::clip_contrastive_loss(g, img, txt, g.param(clip.logit_scale), logits);
  const float lv = g.data(loss)[0];
  if (!std::isfinite(lv)) return lv;  // the caller reports it; weights stay as they were
  g.backward(loss);
  const float scale = clip_grad > 0 ? clip_scale(grad_norm(opt.params()), clip_grad) : 1.f;
  opt.step(lr, scale, /*zero_grads=*/true);
  // CLIP clips the temperature so logits are scaled by at most 100.
  float& t = clip.logit_scale.value.f32()[0];
  t = std::min(std::max(t, 0.f), std::log(100.f));
  return lv;
}

namespace {

// The run position and the running sums over the epoch so far.
struct ClipTrainState : RunPosition<ClipEpochRecord> {
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  std::vector<double> losses;  // this epoch's per-step losses
};

nlohmann::json record_json(const ClipEpochRecord& r) {
  return {{"epoch", r.epoch},           {"train_loss", r.train_loss},   {"train_acc", r.train_acc},
          {"zero_shot_acc", r.zero_shot_acc}, {"logit_scale", r.logit_scale}, {"seconds", r.seconds},
          {"pairs_per_s", r.pairs_per_s}, {"losses", r.losses}};
}

ClipEpochRecord record_from_json(const nlohmann::json& j) {
  ClipEpochRecord r;
  r.epoch = j.at("epoch");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.zero_shot_acc = j.at("zero_shot_acc");
  r.logit_scale = j.at("logit_scale");
  r.seconds = j.at("seconds");
  r.pairs_per_s = j.at("pairs_per_s");
  r.losses = j.at("losses").get<std::vector<double>>();
  return r;
}

std::string state_json(const ClipTrainState& s, const ClipTrainOptions& o, const std::string& layout) {
  nlohmann::json j = run_position_json(s, record_json);
  j["loss_sum"] = s.loss_sum;
  j["correct"] = s.correct;
  j["seen"] = s.seen;
  j["losses"] = s.losses;
  j["source_layout"] = layout;
  j["options"] = {{"data", o.data},   {"epochs", o.epochs}, {"batch", o.batch},   {"lr", o.lr},
                  {"min_lr", o.min_lr}, {"weight_decay", o.weight_decay}, {"clip_grad", o.clip_grad},
                  {"freeze", o.freeze}, {"seed", o.seed},   {"augment", o.augment}, {"limit_train", o.limit_train}};
  return j.dump();
}

ClipTrainState state_from_json(const std::string& text, const std::string& path, std::string* layout) {
  TrainStateReader j(text, path);
  ClipTrainState s;
  j.read_position(&s, record_from_json);
  s.loss_sum = j.get<double>("loss_sum");
  s.correct = j.get<int64_t>("correct");
  s.seen = j.get<int64_t>("seen");
  s.losses = j.get<std::vector<double>>("losses");
  *layout = j.get<std::string>("source_layout", "openai_clip");
  return s;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Training curves: in-batch accuracy as "train", zero-shot accuracy (when measured) as "test".
EpochPoint curve_point(const ClipEpochRecord& r) {
  EpochPoint p;
  p.epoch = r.epoch;
  p.train_loss = r.train_loss;
  p.train_acc = r.train_acc;
  if (r.zero_shot_acc >= 0) p.test_acc = r.zero_shot_acc;
  return p;
}

std::unique_ptr<text::ClipTokenizer> choose_tokenizer(const ClipTrainOptions& o, bool fmnist,
                                                      const std::vector<data::ImageTextPair>& pairs,
                                                      std::FILE* log) {
  if (!o.vocab.empty()) return open_clip_tokenizer(o.vocab);
  if (!o.init.empty()) {
    io::SafetensorsFile f = io::SafetensorsFile::open(o.init);
    if (auto t = tokenizer_from_metadata(f)) return t;
    return open_clip_tokenizer("", o.init);
  }
  std::vector<std::string> corpus;
  if (fmnist) {
    for (int k = 0; k < 10; ++k)
      for (const auto& name : data::fmnist_synonyms(k))
        for (const auto& t : data::fmnist_train_templates()) corpus.push_back(data::fill_template(t, name));
  } else {
    for (const auto& p : pairs) corpus.push_back(p.caption);
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> merges = text::train_bpe_merges(corpus, o.bpe_merges);
  auto tok = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_merges(merges));
  std::fprintf(log, "tokenizer: learned %zu BPE merges from %zu captions in %.2f s (vocabulary %lld)\n",
               merges.size(), corpus.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               (long long)tok->vocab_size());
  return tok;
}

}  // namespace

std::vector<ClipEpochRecord> train_clip(const ClipTrainOptions& o, std::FILE* log) {
  MMKIT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  MMKIT_CHECK(o.batch >= 2 && o.batch <= 65536, "--batch must be in 2..65536 (contrastive training needs negatives), got ",
              o.batch);
  MMKIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number");
  MMKIT_CHECK(o.freeze.empty() || o.freeze == "image" || o.freeze == "text",
              "--freeze must be image or text, got '", o.freeze, "'");
  set_num_threads(o.threads);
  make_dirs(o.out_dir);
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  if (!o.resume && path_exists(ckpt))
    fail(o.out_dir, " already holds a training run (checkpoint.safetensors); pass --resume to continue it or choose another --out");
  const bool resumed = o.resume && path_exists(ckpt);

  // ---- data
  const bool is_file = o.data.size() > 4 && (o.data.compare(o.data.size() - 6, 6, ".jsonl") == 0 ||
                                              o.data.compare(o.data.size() - 4, 4, ".csv") == 0);
  data::ImageSet train, test;
  std::vector<data::ImageTextPair> pairs;
  if (is_file) {
    pairs = data::read_image_text_file(o.data);
    if (o.limit_train > 0 && o.limit_train < int64_t(pairs.size())) pairs.resize(size_t(o.limit_train));
  } else {
    std::string dir = o.data == "fashion-mnist" ? std::string(data::kFashionMnistDir) : o.data;
    train = data::first_images(data::load_fashion_mnist(dir, "train"), o.limit_train);
    test = data::first_images(data::load_fashion_mnist(dir, "test"), o.limit_test);
  }
  const int64_t n_train = is_file ? int64_t(pairs.size()) : train.n;

  // ---- tokenizer, model, optimizer
  std::unique_ptr<io::SafetensorsFile> ck;
  ClipTrainState st;
  std::string layout = "openai_clip";
  std::unique_ptr<text::ClipTokenizer> tok;
  ClipConfig cfg = o.model;
  Clip clip;
  if (resumed) {
    ck = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ckpt));
    auto meta = ck->metadata();
    MMKIT_CHECK(meta.count("config") && meta.count("train_state"), ckpt,
                ": missing config/train_state metadata; not an mmkit CLIP training checkpoint");
    cfg = ClipConfig::from_json(meta["config"]);
    st = state_from_json(meta["train_state"], ckpt, &layout);
    tok = tokenizer_from_metadata(*ck);
    MMKIT_CHECK(tok, ckpt, ": no tokenizer in the checkpoint metadata");
    clip.init(cfg, o.seed);
  } else {
    tok = choose_tokenizer(o, !is_file, pairs, log);
    if (!o.init.empty()) {
      auto src = load_clip(o.init);
      auto f = io::SafetensorsFile::open(o.init);
      layout = io::detect_layout(f) == io::Layout::hf_clip ? "hf_clip" : "openai_clip";
      cfg = src->cfg;
      clip.init(cfg, o.seed);
      auto dst = clip.parameters(), from = src->parameters();
      for (size_t k = 0; k < dst.size(); ++k) std::memcpy(dst[k]->value.raw(), from[k]->value.raw(), dst[k]->value.nbytes());
      std::fprintf(log, "fine-tuning %s (%s layout)\n", o.init.c_str(), layout.c_str());
    } else {
      cfg.vocab_size = tok->vocab_size();
      if (!is_file) cfg.image_resolution = train.rows;
      clip.init(cfg, o.seed);
    }
  }
  MMKIT_CHECK(tok->vocab_size() <= cfg.vocab_size, "the tokenizer has ", tok->vocab_size(),
              " tokens but the model's embedding table only ", cfg.vocab_size);
  nn::ParamList params = clip.parameters();
  for (Parameter* p : params) {
    bool visual = starts_with(p->name, "visual.");
    if ((o.freeze == "image" && visual) || (o.freeze == "text" && !visual && p->name != "logit_scale"))
      p->trainable = false;
  }
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  AdamW opt(params, ac);
  if (resumed) {
    resume_from_checkpoint(*ck, params, opt, st.step);
    ck.reset();
    std::fprintf(log, "resuming %s at epoch %d, step %lld\n", o.out_dir.c_str(), st.epoch + 1, (long long)st.step);
  }

  const int64_t R = cfg.image_resolution, T = cfg.context_length, per = 3 * R * R;
  if (!is_file)
    MMKIT_CHECK(train.rows == R && train.cols == R, "Fashion-MNIST images are ", train.rows, "x", train.cols,
                ", the model expects ", R, "x", R);
  std::unique_ptr<data::ImageBatchLoader> loader;
  if (is_file) {
    std::vector<std::string> paths;
    for (auto& p : pairs) paths.push_back(p.image);
    loader = std::make_unique<data::ImageBatchLoader>(paths, preprocess_preset("clip", int(R)), o.workers,
                                                      o.augment && o.flip);
  }
  // Zero-shot evaluation data (Fashion-MNIST): preprocessed once.
  std::vector<float> test_pixels;
  std::vector<int32_t> test_labels;
  if (!is_file) {
    int64_t n = o.eval_images > 0 ? std::min(o.eval_images, test.n) : test.n;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    test_pixels.resize(size_t(n * per));
    fmnist_to_clip_pixels(test, idx.data(), n, test_pixels.data());
    test_labels.assign(test.labels.begin(), test.labels.begin() + n);
  }

  data::Batcher batcher(n_train, o.batch, o.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t steps_per_epoch = batcher.batches_per_epoch();
  MMKIT_CHECK(steps_per_epoch > 0, "training set of ", n_train, " pairs is smaller than one batch of ", o.batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : steps_per_epoch;
  {
    int64_t n_params = 0, n_train_params = 0;
    for (Parameter* p : params) {
      n_params += p->value.numel();
      if (p->trainable) n_train_params += p->value.numel();
    }
    std::fprintf(log,
                 "CLIP: image %lldx%lld patch %lld width %lld x%lld layers | text ctx %lld width %lld x%lld layers, "
                 "vocab %lld | embed %lld | %lld parameters (%lld trained%s)\n"
                 "data: %lld pairs (%s); %d epochs x %lld steps of %d; %d threads\n",
                 (long long)R, (long long)R, (long long)cfg.vision_patch_size, (long long)cfg.vision_width,
                 (long long)cfg.vision_layers, (long long)T, (long long)cfg.transformer_width,
                 (long long)cfg.transformer_layers, (long long)cfg.vocab_size, (long long)cfg.embed_dim,
                 (long long)n_params, (long long)n_train_params,
                 o.freeze.empty() ? "" : (", " + o.freeze + " tower frozen").c_str(), (long long)n_train,
                 is_file ? o.data.c_str() : "Fashion-MNIST + generated captions", o.epochs,
                 (long long)steps_per_epoch, o.batch, num_threads());
  }

  auto save = [&](bool model_too) {
    std::map<std::string, std::string> meta = {{"config", cfg.to_json()},
                                               {"train_state", state_json(st, o, layout)},
                                               {"format", "mmkit.clip.checkpoint.v1"}};
    set_tokenizer_metadata(meta, *tok);
    io::save_parameters(ckpt, params, meta, optimizer_tensors(opt));
    if (model_too) {
      std::map<std::string, std::string> mm;
      set_tokenizer_metadata(mm, *tok);
      save_clip_model(o.out_dir + "/model.safetensors", clip, mm, layout);
    }
  };

  StopSignalScope signals;
  Arena arena;
  Graph g(arena);
  g.training = true;
  Tensor x = Tensor::empty(Shape{o.batch, 3, R, R});
  Tensor ids = Tensor::empty(Shape{o.batch, T}, DType::i32);
  Tensor logits = Tensor::empty(Shape{o.batch, o.batch});
  std::unordered_map<std::string, std::vector<int32_t>> tok_cache;
  std::vector<int64_t> idx, next_idx;
  data::ImageSet one;  // one augmented Fashion-MNIST image
  one.rows = train.rows;
  one.cols = train.cols;
  one.channels = 1;
  one.n = 1;
  one.pixels.resize(size_t(train.rows * train.cols));
  const int64_t zero = 0;
  auto tokens_of = [&](const std::string& c) -> const std::vector<int32_t>& {
    auto it = tok_cache.find(c);
    if (it == tok_cache.end()) it = tok_cache.emplace(c, tok->encode_padded(c, int(T))).first;
    return it->second;
  };

  for (int epoch = st.epoch; epoch < o.epochs; ++epoch) {
    batcher.start_epoch(epoch);
    if (st.batch_in_epoch > 0) batcher.seek(st.batch_in_epoch);
    Progress::Options po;
    po.unit = "pairs/s";
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), steps_per_epoch * o.batch,
                 stderr, po);
    auto t_epoch = std::chrono::steady_clock::now();
    const double seconds_before = st.epoch_seconds;
    bool have = batcher.next(&idx);
    if (have && loader) loader->start(idx, mix64(o.seed ^ uint64_t(st.step)));
    while (have) {
      const int64_t n = int64_t(idx.size());
      if (loader) {
        loader->finish(x.f32());
        for (int64_t i = 0; i < n; ++i) {
          const auto& t = tokens_of(pairs[size_t(idx[size_t(i)])].caption);
          std::memcpy(ids.ptr<int32_t>() + i * T, t.data(), size_t(T) * 4);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t k = idx[size_t(i)];
          const uint64_t row_seed = mix64(o.seed ^ mix64(uint64_t(st.step) * 65536 + uint64_t(i)));
          if (o.augment)
            data::augment_random_crop_flip(train.image(k), train.rows, train.cols, 1, true, row_seed, one.pixels.data());
          else
            std::memcpy(one.pixels.data(), train.image(k), one.pixels.size());
          fmnist_to_clip_pixels(one, &zero, 1, x.f32() + i * per);
          const auto& t = tokens_of(data::fmnist_caption(train.labels[size_t(k)], row_seed ^ 0xC4A7105Eull));
          std::memcpy(ids.ptr<int32_t>() + i * T, t.data(), size_t(T) * 4);
        }
      }
      // Start decoding the next batch while this one trains.
      bool more = batcher.next(&next_idx);
      if (more && loader) loader->start(next_idx, mix64(o.seed ^ uint64_t(st.step + 1)));

      float lr = warmup_cosine_lr(st.step, warmup, total_steps, o.lr, o.min_lr);
      g.seed = mix64(o.seed * 7919 + uint64_t(st.step));
      float lv = clip_train_step(g, clip, opt, x, ids, lr, o.clip_grad, &logits);
      MMKIT_CHECK(std::isfinite(lv), "training diverged: loss is ", lv, " at step ", st.step, " (try a lower --lr)");
      const float t = clip.logit_scale.value.f32()[0];
      ++st.step;
      ++st.batch_in_epoch;
      // In-batch image->text accuracy: the top caption is the image's own
      // (caption files) or one of its class (Fashion-MNIST, where a batch
      // holds ~batch/10 captions of each class and any of them is right).
      for (int64_t i = 0; i < n; ++i) {
        const float* row = logits.f32() + i * n;
        const int64_t j = std::max_element(row, row + n) - row;
        st.correct += loader ? j == i : train.labels[size_t(idx[size_t(j)])] == train.labels[size_t(idx[size_t(i)])];
      }
      st.seen += n;
      st.loss_sum += double(lv) * n;
      st.losses.push_back(lv);
      st.epoch_seconds =
          seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f acc %.3f T %.1f lr %.2e", st.loss_sum / st.seen,
                    double(st.correct) / st.seen, std::exp(double(t)), lr);
      bar.update(st.batch_in_epoch * o.batch, extra);
      bool stop = stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps);
      bool epoch_done = st.batch_in_epoch == steps_per_epoch;
      if (!epoch_done && (stop || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0))) save(false);
      if (stop && !epoch_done) {
        bar.finish("stopped");
        std::fprintf(log, "%s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                     stop_signal() ? "interrupted" : "stopped", (long long)st.step, o.out_dir.c_str());
        return st.history;
      }
      std::swap(idx, next_idx);
      have = more;
    }
    bar.finish();
    ClipEpochRecord rec;
    rec.epoch = epoch + 1;
    rec.train_loss = st.loss_sum / double(std::max<int64_t>(1, st.seen));
    rec.train_acc = double(st.correct) / double(std::max<int64_t>(1, st.seen));
    rec.logit_scale = std::exp(double(clip.logit_scale.value.f32()[0]));
    rec.seconds = st.epoch_seconds;
    rec.pairs_per_s = st.epoch_seconds > 0 ? double(steps_per_epoch * o.batch) / st.epoch_seconds : 0;
    rec.losses = st.losses;
    if (!is_file) {
      ZeroShotEval z = zero_shot_accuracy(clip, *tok, test_pixels.data(), test_labels, data::fmnist_prompt_names(),
                                          data::fmnist_heldout_templates());
      rec.zero_shot_acc = z.top1;
    }
    st.history.push_back(rec);
    std::fprintf(log, "epoch %d/%d: loss %.4f, in-batch acc %.4f, temperature 1/%.1f", rec.epoch, o.epochs,
                 rec.train_loss, rec.train_acc, rec.logit_scale);
    if (rec.zero_shot_acc >= 0)
      std::fprintf(log, " | zero-shot test top-1 %.4f (held-out templates)", rec.zero_shot_acc);
    std::fprintf(log, " | %.1f s, %.0f pairs/s\n", rec.seconds, rec.pairs_per_s);
    std::fflush(log);
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.loss_sum = 0;
    st.correct = st.seen = 0;
    st.epoch_seconds = 0;
    st.losses.clear();
    save(true);
    write_history(o.out_dir, st.history, record_json, curve_point,
                  "CLIP: contrastive loss; in-batch (train) and zero-shot (test) accuracy");
    if (stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps)) {
      std::fprintf(log, "stopped after epoch %d; checkpoint saved in %s\n", epoch + 1, o.out_dir.c_str());
      return st.history;
    }
  }
  return st.history;
}

}  // namespace mmkit::train
