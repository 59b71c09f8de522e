#include "mmkit/train/vit_trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/augment.h"
#include "mmkit/data/batcher.h"
#include "mmkit/eval/plots.h"
#include "mmkit/image/to_tensor.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/util/stop_signal.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::train {

namespace {

// Bookkeeping saved with the weights: the run position and the running sums
// over the epoch so far.
struct TrainState : RunPosition<EpochRecord> {
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
};

nlohmann::json record_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},           {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
          {"test_loss", r.test_loss},   {"test_acc", r.test_acc},     {"seconds", r.seconds},
          {"images_per_s", r.images_per_s}};
}

EpochRecord record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.test_loss = j.at("test_loss");
  r.test_acc = j.at("test_acc");
  r.seconds = j.at("seconds");
  r.images_per_s = j.value("images_per_s", 0.0);
  return r;
}

std::string state_json(const TrainState& s, const VitTrainOptions& o) {
  nlohmann::json j = run_position_json(s, record_json);
  j["loss_sum"] = s.loss_sum;
  j["correct"] = s.correct;
  j["seen"] = s.seen;
  j["options"] = {{"epochs", o.epochs},       {"batch", o.batch},
                  {"lr", o.lr},               {"min_lr", o.min_lr},
                  {"weight_decay", o.weight_decay}, {"label_smoothing", o.label_smoothing},
                  {"clip_grad", o.clip_grad}, {"augment", o.augment},
                  {"aug_shift", o.aug_shift},  {"aug_flip", o.aug_flip},
                  {"seed", o.seed},           {"limit_train", o.limit_train}};
  return j.dump();
}

TrainState state_from_json(const std::string& text, const std::string& path) {
  TrainStateReader j(text, path);
  TrainState s;
  j.read_position(&s, record_from_json);
  s.loss_sum = j.get<double>("loss_sum");
  s.correct = j.get<int64_t>("correct");
  s.seen = j.get<int64_t>("seen");
  return s;
}

void save_checkpoint(const std::string& dir, Vit& vit, AdamW& opt, const TrainState& st,
                     const VitTrainOptions& o) {
  const auto& ps = opt.params();
  std::vector<io::NamedTensor> extra = optimizer_tensors(opt);
  std::map<std::string, std::string> meta = {{"config", vit.cfg.to_json()},
                                             {"train_state", state_json(st, o)},
                                             {"format", "mmkit.vit.checkpoint.v1"}};
  io::save_parameters(dir + "/checkpoint.safetensors", ps, meta, extra);
  io::save_parameters(dir + "/model.safetensors", ps,
                      {{"config", vit.cfg.to_json()}, {"format", "mmkit.vit.v1"}});
}

EpochPoint curve_point(const EpochRecord& r) {
  return {r.epoch, r.train_loss, r.test_loss, r.train_acc, r.test_acc};
}

}  // namespace

int last_stop_signal() { return stop_signal(); }

void images_to_input(const Vit& vit, const data::ImageSet& set, const int64_t* idx, int64_t n,
                     float* out) {
  const int64_t per = vit.cfg.channels * vit.cfg.image_size * vit.cfg.image_size;
  MMKIT_CHECK(set.rows == vit.cfg.image_size && set.cols == vit.cfg.image_size &&
                  set.channels == vit.cfg.channels,
              "dataset images are ", set.rows, "x", set.cols, "x", set.channels, ", the model expects ",
              vit.cfg.image_size, "x", vit.cfg.image_size, "x", vit.cfg.channels);
  for (int64_t i = 0; i < n; ++i)
    pixels_to_chw(set.image(idx[i]), set.rows, set.cols, set.channels, vit.cfg.pixel_mean,
                  vit.cfg.pixel_std, out + i * per);
}

EvalResult evaluate_vit(Vit& vit, const data::ImageSet& set, int batch, bool show_progress) {
  const int64_t K = vit.cfg.num_classes;
  EvalResult r;
  r.n = set.n;
  r.confusion.assign(size_t(K * K), 0);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  std::vector<int64_t> idx;
  Tensor x = Tensor::empty(Shape{batch, vit.cfg.channels, vit.cfg.image_size, vit.cfg.image_size});
  Tensor y = Tensor::empty(Shape{batch}, DType::i32);
  Progress::Options po;
  po.unit = "img/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("eval", set.n, stderr, po);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t i0 = 0; i0 < set.n; i0 += batch) {
    int64_t n = std::min<int64_t>(batch, set.n - i0);
    idx.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      idx[size_t(i)] = i0 + i;
      int32_t lab = set.labels[size_t(i0 + i)];
      MMKIT_CHECK(lab >= 0 && lab < K, "label ", lab, " of image ", i0 + i, " outside the model's ",
                  K, " classes");
      y.ptr<int32_t>()[i] = lab;
    }
    g.reset();
    // The first n rows of the batch buffers (the last batch may be short).
    Tensor xb = Tensor::view(x.raw(), Shape{n, vit.cfg.channels, vit.cfg.image_size, vit.cfg.image_size}, DType::f32);
    Tensor yb = Tensor::view(y.raw(), Shape{n}, DType::i32);
    images_to_input(vit, set, idx.data(), n, xb.f32());
    Var logits = vit_forward(g, vit, g.constant(xb));
    Var loss = ag::cross_entropy(g, logits, yb, 0.f);
    loss_sum += double(g.data(loss)[0]) * n;
    const float* L = g.data(logits);
    for (int64_t i = 0; i < n; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (L[i * K + k] > L[i * K + best]) best = k;
      int32_t t = y.ptr<int32_t>()[i];
      correct += best == t;
      r.confusion[size_t(t * K + best)]++;
    }
    bar.update(i0 + n);
  }
  bar.finish();
  r.accuracy = set.n ? double(correct) / double(set.n) : 0;
  r.loss = set.n ? loss_sum / double(set.n) : 0;
  return r;
}

namespace {

int64_t count_layers(const io::SafetensorsFile& f, const std::string& pre, const std::string& post) {
  int64_t n = 0;
  while (f.find(pre + std::to_string(n) + post)) ++n;
  return n;
}

const io::TensorView& need(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  MMKIT_CHECK(t, f.path(), ": expected tensor '", name, "' is missing");
  return *t;
}

VitConfig torchvision_config(const io::SafetensorsFile& f, int64_t heads) {
  VitConfig c;
  const auto& conv = need(f, "conv_proj.weight");
  MMKIT_CHECK(conv.shape.size() == 4, f.path(), ": conv_proj.weight should be [D, C, p, p]");
  c.dim = conv.shape[0];
  c.channels = conv.shape[1];
  c.patch_size = conv.shape[2];
  const auto& pos = need(f, "encoder.pos_embedding");
  int64_t n = pos.shape.size() == 3 ? pos.shape[1] - 1 : 0, side = int64_t(std::lround(std::sqrt(double(n))));
  MMKIT_CHECK(n > 0 && side * side == n, f.path(), ": encoder.pos_embedding does not describe a square patch grid");
  c.image_size = side * c.patch_size;
  c.depth = count_layers(f, "encoder.layers.encoder_layer_", ".ln_1.weight");
  c.mlp_dim = need(f, "encoder.layers.encoder_layer_0.mlp.0.weight").shape[0];
  c.num_classes = need(f, "heads.head.weight").shape[0];
  auto it = f.metadata().find("config");
  if (heads <= 0 && it != f.metadata().end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_object() && j.contains("num_heads") && j["num_heads"].is_number_integer()) heads = j["num_heads"];
  }
  MMKIT_CHECK(heads > 0, f.path(), ": the attention head count cannot be inferred from tensor shapes; pass "
              "--heads N (vit_b_16: 12) or store {\"num_heads\": N} in the metadata 'config'");
  c.heads = heads;
  c.norm_first = true;
  c.eps = 1e-6f;
  c.preprocess = "imagenet";
  return c;
}

VitConfig hf_vit_config(const std::string& path, int64_t heads) {
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  std::string cj = (dir.empty() ? "." : dir) + "/config.json";
  std::string text = io::read_text_file(cj);
  MMKIT_CHECK(!text.empty(), path, ": Hugging Face ViT checkpoint without ", cj);
  return VitConfig::from_hf_json(text, cj, heads);
}

}  // namespace

Vit load_vit(const std::string& model_path, int64_t heads) {
  std::string path = model_path;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/model.safetensors";
  MMKIT_CHECK(path_exists(path), "model file ", path, " not found (train one with `mmkit train vit --out DIR`)");
  auto file = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
  io::Layout layout = io::detect_layout(*file);
  Vit vit;
  if (layout == io::Layout::torchvision_vit || layout == io::Layout::hf_vit) {
    VitConfig cfg = layout == io::Layout::torchvision_vit ? torchvision_config(*file, heads)
                                                           : hf_vit_config(path, heads);
    PreprocessConfig pre = preprocess_preset(cfg.preprocess, int(cfg.image_size));
    cfg.pixel_mean.assign(pre.mean.begin(), pre.mean.end());
    cfg.pixel_std.assign(pre.std.begin(), pre.std.end());
    vit.init(cfg, 0);
    io::Remapped r = io::remap(file, layout);
    // Extra tensors a fixture may carry are not part of the model.
    for (auto it = r.unused.begin(); it != r.unused.end();)
      it = (it->rfind("input.", 0) == 0 || it->rfind("output.", 0) == 0) ? r.unused.erase(it) : it + 1;
    io::bind_remapped(r, vit.parameters(), path);
    return vit;
  }
  MMKIT_CHECK(layout == io::Layout::mmkit, path, " is a ", io::layout_name(layout), " checkpoint, not a ViT classifier");
  auto it = file->metadata().find("config");
  MMKIT_CHECK(it != file->metadata().end(), path, ": no 'config' in the safetensors metadata; not an mmkit ViT model");
  VitConfig cfg = VitConfig::from_json(it->second);
  if (heads > 0) cfg.heads = heads;
  vit.init(cfg, 0);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(*file, vit.parameters(), lo);
  return vit;
}

std::vector<EpochRecord> train_vit(const VitTrainOptions& o, std::FILE* log) {
  MMKIT_CHECK(!o.out_dir.empty(), "no output directory given (--out DIR)");
  MMKIT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  MMKIT_CHECK(o.batch > 0 && o.batch <= 65536, "--batch must be in 1..65536, got ", o.batch);
  MMKIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number");
  set_num_threads(o.threads);
  make_dirs(o.out_dir);
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  if (!o.resume && path_exists(ckpt))
    fail(o.out_dir, " already holds a training run (checkpoint.safetensors); pass --resume to continue it or choose another --out");

  data::ImageSet train = data::first_images(data::load_fashion_mnist(o.data_dir, "train"), o.limit_train);
  data::ImageSet test = data::first_images(data::load_fashion_mnist(o.data_dir, "test"), o.limit_test);

  Vit vit;
  TrainState st;
  bool resumed = o.resume && path_exists(ckpt);
  std::unique_ptr<io::SafetensorsFile> ck;
  VitConfig cfg = o.model;
  if (resumed) {
    ck = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ckpt));
    auto meta = ck->metadata();
    MMKIT_CHECK(meta.count("config") && meta.count("train_state"), ckpt,
                ": missing config/train_state metadata; not an mmkit training checkpoint");
    cfg = VitConfig::from_json(meta["config"]);
    st = state_from_json(meta["train_state"], ckpt);
  } else {
    cfg.class_names = train.class_names;
    cfg.channels = train.channels;
    MMKIT_CHECK(train.rows == train.cols, "training images must be square, got ", train.rows, "x", train.cols);
    cfg.image_size = train.rows;
    cfg.num_classes = int64_t(train.class_names.size());
    if (cfg.pixel_mean.empty()) {
      // Per-channel statistics of the training set.
      double sum = 0, sq = 0;
      for (uint8_t p : train.pixels) {
        sum += p / 255.0;
        sq += (p / 255.0) * (p / 255.0);
      }
      double n = double(train.pixels.size()), mean = sum / n;
      cfg.pixel_mean.assign(size_t(cfg.channels), float(mean));
      cfg.pixel_std.assign(size_t(cfg.channels), float(std::sqrt(std::max(1e-8, sq / n - mean * mean))));
    }
  }
  vit.init(cfg, o.seed);
  nn::ParamList params = vit.parameters();
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  AdamW opt(params, ac);
  if (resumed) {
    resume_from_checkpoint(*ck, params, opt, st.step);
    ck.reset();
    std::fprintf(log, "resuming %s at epoch %d, step %lld\n", o.out_dir.c_str(), st.epoch + 1,
                 (long long)st.step);
  }

  data::Batcher batcher(train.n, o.batch, o.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t steps_per_epoch = batcher.batches_per_epoch();
  MMKIT_CHECK(steps_per_epoch > 0, "training set of ", train.n, " images is smaller than one batch of ", o.batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : steps_per_epoch;
  {
    int64_t n_params = 0;
    for (Parameter* p : params) n_params += p->value.numel();
    std::fprintf(log,
                 "ViT: %lldx%lld patch %lld, dim %lld, depth %lld, heads %lld, mlp %lld, %s, %lld parameters\n"
                 "data: %lld train / %lld test images; %d epochs x %lld steps of %d; %d threads\n",
                 (long long)cfg.image_size, (long long)cfg.image_size, (long long)cfg.patch_size,
                 (long long)cfg.dim, (long long)cfg.depth, (long long)cfg.heads, (long long)cfg.mlp_dim,
                 cfg.norm_first ? "pre-norm" : "post-norm", (long long)n_params, (long long)train.n,
                 (long long)test.n, o.epochs, (long long)steps_per_epoch, o.batch, num_threads());
  }

  StopSignalScope signals;
  Arena arena;
  Graph g(arena);
  g.training = true;
  const int64_t C = cfg.channels, S = cfg.image_size;
  Tensor x = Tensor::empty(Shape{o.batch, C, S, S});
  Tensor y = Tensor::empty(Shape{o.batch}, DType::i32);
  std::vector<uint8_t> aug(size_t(train.image_size()));
  std::vector<int64_t> idx;
  data::ImageSet one;  // single augmented image, fed through images_to_input
  one.rows = train.rows;
  one.cols = train.cols;
  one.channels = train.channels;
  one.n = 1;
  one.pixels.resize(aug.size());
  const int64_t zero = 0;

  for (int epoch = st.epoch; epoch < o.epochs; ++epoch) {
    batcher.start_epoch(epoch);
    if (st.batch_in_epoch > 0) batcher.seek(st.batch_in_epoch);
    Progress::Options po;
    po.unit = "img/s";
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs),
                 steps_per_epoch * o.batch, stderr, po);
    auto t_epoch = std::chrono::steady_clock::now();
    double seconds_before = st.epoch_seconds;
    while (batcher.next(&idx)) {
      const int64_t n = int64_t(idx.size());
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* src = train.image(idx[size_t(i)]);
        if (o.augment && C == 1) {
          data::augment_random_crop_flip(src, train.rows, train.cols, o.aug_shift, o.aug_flip,
                                         mix64(o.seed ^ mix64(uint64_t(st.step) * 65536 + uint64_t(i))),
                                         aug.data());
          std::memcpy(one.pixels.data(), aug.data(), aug.size());
        } else {
          std::memcpy(one.pixels.data(), src, aug.size());
        }
        images_to_input(vit, one, &zero, 1, x.f32() + i * C * S * S);
        y.ptr<int32_t>()[i] = train.labels[size_t(idx[size_t(i)])];
      }
      g.reset();
      g.seed = mix64(o.seed * 7919 + uint64_t(st.step));
      Var logits = vit_forward(g, vit, g.constant(x));
      Var loss = ag::cross_entropy(g, logits, y, o.label_smoothing);
      float lv = g.data(loss)[0];
      MMKIT_CHECK(std::isfinite(lv), "training diverged: loss is ", lv, " at step ", st.step,
                  " (try a lower --lr)");
      g.backward(loss);
      float lr = warmup_cosine_lr(st.step, warmup, total_steps, o.lr, o.min_lr);
      // Clipping and zeroing fused into AdamW's one pass over the gradients,
      // which are zero on entry (AdamW starts from zeroed buffers and every
      // step zeroes them again).
      opt.step(lr, o.clip_grad > 0 ? clip_scale(grad_norm(params), o.clip_grad) : 1.f, /*zero_grads=*/true);
      ++st.step;
      ++st.batch_in_epoch;
      const float* L = g.data(logits);
      const int64_t K = cfg.num_classes;
      for (int64_t i = 0; i < n; ++i) {
        int64_t best = 0;
        for (int64_t k = 1; k < K; ++k)
          if (L[i * K + k] > L[i * K + best]) best = k;
        st.correct += best == y.ptr<int32_t>()[i];
      }
      st.seen += n;
      st.loss_sum += double(lv) * n;
      st.epoch_seconds = seconds_before +
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f acc %.3f lr %.2e", st.loss_sum / st.seen,
                    double(st.correct) / st.seen, lr);
      bar.update(st.batch_in_epoch * o.batch, extra);
      bool stop = stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps);
      bool epoch_done = st.batch_in_epoch == steps_per_epoch;
      if (!epoch_done && (stop || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0)))
        save_checkpoint(o.out_dir, vit, opt, st, o);
      if (stop && !epoch_done) {
        bar.finish("stopped");
        std::fprintf(log, "%s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                     stop_signal() ? "interrupted" : "stopped", (long long)st.step, o.out_dir.c_str());
        return st.history;
      }
    }
    bar.finish();
    EvalResult ev = evaluate_vit(vit, test, 500);
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.train_loss = st.loss_sum / std::max<int64_t>(1, st.seen);
    rec.train_acc = double(st.correct) / std::max<int64_t>(1, st.seen);
    rec.test_loss = ev.loss;
    rec.test_acc = ev.accuracy;
    rec.seconds = st.epoch_seconds;
    rec.images_per_s = st.epoch_seconds > 0 ? double(steps_per_epoch * o.batch) / st.epoch_seconds : 0;
    st.history.push_back(rec);
    std::fprintf(log, "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s, %.0f img/s\n",
                 rec.epoch, o.epochs, rec.train_loss, rec.train_acc, rec.test_loss, rec.test_acc,
                 rec.seconds, rec.images_per_s);
    std::fflush(log);
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.loss_sum = 0;
    st.correct = st.seen = 0;
    st.epoch_seconds = 0;
    save_checkpoint(o.out_dir, vit, opt, st, o);
    write_history(o.out_dir, st.history, record_json, curve_point, "ViT on Fashion-MNIST");
    if (stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps)) {
      std::fprintf(log, "stopped after epoch %d; checkpoint saved in %s\n", epoch + 1, o.out_dir.c_str());
      return st.history;
    }
  }
  return st.history;
}

}  // namespace mmkit::train
