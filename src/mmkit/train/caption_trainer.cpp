#include "mmkit/train/caption_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "mmkit/autograd/functions.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/core/parallel.h"
#include "mmkit/data/batcher.h"
#include "mmkit/eval/plots.h"
#include "mmkit/image/image.h"
#include "mmkit/image/to_tensor.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/util/stop_signal.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/json_config.h"
#include "mmkit/util/progress.h"

namespace mmkit::train {

// ------------------------------------------------------------------ data

namespace {

Image fit_image(const Image& src, int64_t size, int64_t channels) {
  Image im = channels == 1 ? to_gray(src) : to_rgb(src);
  if (im.width != size || im.height != size) im = resize_bilinear(im, int(size), int(size));
  return im;
}

}  // namespace

CaptionData load_caption_data(const std::string& jsonl, int64_t image_size, int64_t channels, int64_t limit,
                              bool progress) {
  MMKIT_CHECK(channels == 1 || channels == 3, "caption data: channels must be 1 or 3, got ", channels);
  CaptionData d;
  d.examples = data::read_caption_jsonl(jsonl);
  if (limit > 0 && limit < d.n()) d.examples.resize(size_t(limit));
  d.channels = channels;
  ProgressOptions po;
  po.unit = "img/s";
  if (!progress) po.mode = ProgressMode::off;
  Progress bar("loading " + jsonl, d.n(), stderr, po);
  for (int64_t i = 0; i < d.n(); ++i) {
    Image im = decode_image_file(d.examples[size_t(i)].image);
    if (i == 0) {
      d.size = image_size > 0 ? image_size : im.width;
      d.pixels.resize(size_t(d.n() * d.size * d.size * channels));
    }
    im = fit_image(im, d.size, channels);
    std::memcpy(d.pixels.data() + i * d.size * d.size * channels, im.pixels.data(), im.pixels.size());
    bar.update(i + 1);
  }
  bar.finish();
  return d;
}

void caption_input(const Captioner& m, const CaptionData& d, const int64_t* idx, int64_t n, float* out) {
  const VitConfig& v = m.cfg.vision;
  MMKIT_CHECK(d.size == v.image_size && d.channels == v.channels, "caption data images are ", d.size, "x", d.size,
              "x", d.channels, ", the model expects ", v.image_size, "x", v.image_size, "x", v.channels);
  const int64_t per = v.channels * v.image_size * v.image_size;
  for (int64_t i = 0; i < n; ++i)
    pixels_to_chw(d.image(idx[i]), int(d.size), int(d.size), int(d.channels), v.pixel_mean, v.pixel_std,
                  out + i * per);
}

Tensor caption_input(const Captioner& m, const std::vector<Image>& images) {
  const VitConfig& v = m.cfg.vision;
  const int64_t n = int64_t(images.size()), S = v.image_size, C = v.channels;
  Tensor t = Tensor::empty(Shape{n, C, S, S});
  for (int64_t i = 0; i < n; ++i) {
    Image im = fit_image(images[size_t(i)], S, C);
    pixels_to_chw(im.pixels.data(), int(S), int(S), int(C), v.pixel_mean, v.pixel_std, t.f32() + i * C * S * S);
  }
  return t;
}

// ------------------------------------------------------------------ model files

CaptionModel load_captioner(const std::string& model_path) {
  std::string path = is_directory(model_path) ? model_path + "/model.safetensors" : model_path;
  MMKIT_CHECK(path_exists(path), "model file ", path, " not found (train one with `mmkit train caption --out DIR`)");
  io::SafetensorsFile f = io::SafetensorsFile::open(path);
  const auto& meta = f.metadata();
  MMKIT_CHECK(meta.count("config") && meta.count("vocab"), path,
              ": no 'config'/'vocab' metadata; not an mmkit captioner");
  CaptionModel m;
  CaptionerConfig cfg = CaptionerConfig::from_json(meta.at("config"), path + " config");
  m.vocab = text::CaptionVocab::from_json(meta.at("vocab"), path + " vocab");
  MMKIT_CHECK(m.vocab.size() == cfg.decoder.vocab_size, path, ": vocabulary has ", m.vocab.size(),
              " words, the config says ", cfg.decoder.vocab_size);
  m.model.init(cfg, 0);
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(f, m.model.parameters(), lo);
  return m;
}

// ------------------------------------------------------------------ evaluation

CaptionEvalResult evaluate_captions(Captioner& m, const text::CaptionVocab& vocab, const CaptionData& d,
                                    const GenerateOptions& g, int64_t limit, bool progress, int batch) {
  auto t0 = std::chrono::steady_clock::now();
  const int64_t n = limit > 0 ? std::min(limit, d.n()) : d.n();
  const VitConfig& v = m.cfg.vision;
  CaptionEvalResult r;
  r.images = n;
  std::vector<Tokens> cands;
  std::vector<std::vector<Tokens>> refs;
  std::vector<std::vector<data::SceneObject>> objects;
  r.has_objects = n > 0;
  ProgressOptions po;
  po.unit = "img/s";
  if (!progress) po.mode = ProgressMode::off;
  Progress bar(g.beam > 1 ? "captioning (beam " + std::to_string(g.beam) + ")" : "captioning (greedy)", n, stderr,
               po);
  std::vector<int64_t> idx;
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    const int64_t b = std::min<int64_t>(batch, n - i0);
    idx.resize(size_t(b));
    for (int64_t i = 0; i < b; ++i) idx[size_t(i)] = i0 + i;
    Tensor x = Tensor::empty(Shape{b, v.channels, v.image_size, v.image_size});
    caption_input(m, d, idx.data(), b, x.f32());
    ImageMemory mem = encode_images(m, x);
    auto caps = generate(m, mem, g);
    for (int64_t i = 0; i < b; ++i) {
      const data::CaptionExample& ex = d.examples[size_t(i0 + i)];
      std::string text = vocab.decode(caps[size_t(i)].tokens);
      cands.push_back(metric_tokens(text));
      refs.emplace_back();
      for (auto& c : ex.captions) refs.back().push_back(metric_tokens(c));
      objects.push_back(ex.objects);
      r.has_objects &= !ex.objects.empty();
      r.captions.push_back(std::move(text));
    }
    bar.update(i0 + b);
  }
  bar.finish();
  r.bleu = corpus_bleu(cands, refs);
  r.cider_d = cider_d(cands, refs);
  if (r.has_objects) r.objects = object_f1(cands, objects);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ------------------------------------------------------------------ training

namespace {

// The run position and the running sums over the epoch so far.
struct TrainState : RunPosition<CaptionEpochRecord> {
  double loss_sum = 0;  // over batches of the epoch so far (weighted by target tokens)
  int64_t tokens = 0, correct = 0;
};

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json record_json(const CaptionEpochRecord& r) {
  return {{"epoch", r.epoch},           {"train_loss", r.train_loss},         {"train_acc", r.train_acc},
          {"test_loss", r.test_loss},   {"test_acc", r.test_acc},             {"val_object_f1", num(r.val_object_f1)},
          {"val_bleu4", num(r.val_bleu4)}, {"val_cider_d", num(r.val_cider_d)}, {"seconds", r.seconds},
          {"images_per_s", r.images_per_s}};
}

CaptionEpochRecord record_from_json(const nlohmann::json& j) {
  auto opt = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN; };
  CaptionEpochRecord r;
  r.epoch = j.at("epoch");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.test_loss = j.at("test_loss");
  r.test_acc = j.at("test_acc");
  r.val_object_f1 = opt("val_object_f1");
  r.val_bleu4 = opt("val_bleu4");
  r.val_cider_d = opt("val_cider_d");
  r.seconds = j.at("seconds");
  r.images_per_s = j.value("images_per_s", 0.0);
  return r;
}

std::string state_json(const TrainState& s, const CaptionTrainOptions& o) {
  nlohmann::json j = run_position_json(s, record_json);
  j["loss_sum"] = s.loss_sum;
  j["tokens"] = s.tokens;
  j["correct"] = s.correct;
  j["options"] = {{"data", o.data_dir},     {"epochs", o.epochs},
                  {"batch", o.batch},       {"lr", o.lr},
                  {"min_lr", o.min_lr},     {"weight_decay", o.weight_decay},
                  {"label_smoothing", o.label_smoothing}, {"clip_grad", o.clip_grad},
                  {"seed", o.seed},         {"limit_train", o.limit_train}};
  return j.dump();
}

TrainState state_from_json(const std::string& text, const std::string& path) {
  TrainStateReader j(text, path);
  TrainState s;
  j.read_position(&s, record_from_json);
  s.loss_sum = j.get<double>("loss_sum");
  s.tokens = j.get<int64_t>("tokens");
  s.correct = j.get<int64_t>("correct");
  return s;
}

void save_checkpoint(const std::string& dir, Captioner& m, const text::CaptionVocab& vocab, AdamW& opt,
                     const TrainState& st, const CaptionTrainOptions& o) {
  const auto& ps = opt.params();
  std::vector<io::NamedTensor> extra = optimizer_tensors(opt);
  const std::string cfg = m.cfg.to_json(), voc = vocab.to_json();
  io::save_parameters(dir + "/checkpoint.safetensors", ps,
                      {{"config", cfg}, {"vocab", voc}, {"train_state", state_json(st, o)},
                       {"format", "mmkit.captioner.checkpoint.v1"}},
                      extra);
  io::save_parameters(dir + "/model.safetensors", ps,
                      {{"config", cfg}, {"vocab", voc}, {"format", "mmkit.captioner.v1"}});
}

EpochPoint curve_point(const CaptionEpochRecord& r) {
  return {r.epoch, r.train_loss, r.test_loss, r.train_acc, r.test_acc};
}

// A batch of teacher-forcing sequences: ids [B, T] = BOS w1 .. wn PAD..,
// targets [B*T] = w1 .. wn EOS -1.. (-1: ignored by the loss). Right padding
// needs no key-padding mask: under the causal mask no real token sees a pad.
struct SeqBatch {
  Tensor ids, targets;
  int64_t T = 0, tokens = 0;
};

SeqBatch make_batch(const std::vector<const std::vector<int32_t>*>& words, const CaptionDecoderConfig& c) {
  SeqBatch b;
  const int64_t B = int64_t(words.size());
  for (auto* w : words) b.T = std::max<int64_t>(b.T, int64_t(w->size()) + 1);
  b.T = std::min(b.T, c.max_len);
  b.ids = Tensor::empty(Shape{B, b.T}, DType::i32);
  b.targets = Tensor::empty(Shape{B * b.T}, DType::i32);
  int32_t* ids = b.ids.ptr<int32_t>();
  int32_t* tg = b.targets.ptr<int32_t>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& w = *words[size_t(i)];
    for (int64_t t = 0; t < b.T; ++t) {
      // position t holds the token before target t
      ids[i * b.T + t] = t == 0 ? c.bos_id : (t - 1 < int64_t(w.size()) ? w[size_t(t - 1)] : c.pad_id);
      tg[i * b.T + t] = t < int64_t(w.size()) ? w[size_t(t)] : (t == int64_t(w.size()) ? c.eos_id : -1);
      b.tokens += tg[i * b.T + t] >= 0;
    }
  }
  return b;
}

// Correct next-word predictions among the non-ignored targets.
int64_t count_correct(const float* logits, const int32_t* targets, int64_t rows, int64_t V) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    const float* l = logits + r * V;
    n += int64_t(std::max_element(l, l + V) - l) == targets[r];
  }
  return n;
}

struct LossAcc {
  double loss = 0, acc = 0;
};

// Teacher-forced loss and next-word accuracy over each test image's first reference.
LossAcc test_loss(Captioner& m, const CaptionData& d, const std::vector<std::vector<std::vector<int32_t>>>& words,
                  float smoothing) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  const VitConfig& v = m.cfg.vision;
  const int64_t V = m.cfg.decoder.vocab_size, bs = 100;
  double loss = 0;
  int64_t tokens = 0, correct = 0;
  std::vector<int64_t> idx;
  for (int64_t i0 = 0; i0 < d.n(); i0 += bs) {
    const int64_t b = std::min(bs, d.n() - i0);
    idx.resize(size_t(b));
    std::vector<const std::vector<int32_t>*> w;
    for (int64_t i = 0; i < b; ++i) {
      idx[size_t(i)] = i0 + i;
      w.push_back(&words[size_t(i0 + i)][0]);
    }
    SeqBatch sb = make_batch(w, m.cfg.decoder);
    g.reset();
    Tensor x = g.alloc(Shape{b, v.channels, v.image_size, v.image_size});
    caption_input(m, d, idx.data(), b, x.f32());
    Var logits = caption_decoder_forward(g, m.decoder, sb.ids, captioner_encode(g, m, g.constant(x)));
    Var flat = ag::reshape(g, logits, Shape{b * sb.T, V});
    loss += double(g.data(ag::cross_entropy(g, flat, sb.targets, smoothing))[0]) * double(sb.tokens);
    tokens += sb.tokens;
    correct += count_correct(g.data(flat), sb.targets.ptr<int32_t>(), b * sb.T, V);
  }
  return {tokens ? loss / double(tokens) : 0, tokens ? double(correct) / double(tokens) : 0};
}

}  // namespace

std::vector<CaptionEpochRecord> train_captioner(const CaptionTrainOptions& o, std::FILE* log) {
  MMKIT_CHECK(!o.out_dir.empty(), "no output directory given (--out DIR)");
  MMKIT_CHECK(!o.data_dir.empty(), "no data directory given (--data DIR with train.jsonl and test.jsonl)");
  MMKIT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  MMKIT_CHECK(o.batch > 0 && o.batch <= 65536, "--batch must be in 1..65536, got ", o.batch);
  MMKIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number");
  set_num_threads(o.threads);
  try {
    make_dirs(o.out_dir);
  } catch (const Error& e) {
    fail("cannot use output directory ", o.out_dir, ": ", e.what());
  }
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  if (!o.resume && path_exists(ckpt))
    fail(o.out_dir, " already holds a training run (checkpoint.safetensors); pass --resume to continue it or choose another --out");

  // Configuration and vocabulary: from the checkpoint when resuming, else from the data.
  TrainState st;
  CaptionerConfig cfg = o.model;
  text::CaptionVocab vocab;
  std::unique_ptr<io::SafetensorsFile> ck;
  const bool resumed = o.resume && path_exists(ckpt);
  if (resumed) {
    ck = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ckpt));
    auto meta = ck->metadata();
    MMKIT_CHECK(meta.count("config") && meta.count("vocab") && meta.count("train_state"), ckpt,
                ": missing config/vocab/train_state metadata; not an mmkit captioner training checkpoint");
    cfg = CaptionerConfig::from_json(meta["config"], ckpt + " config");
    vocab = text::CaptionVocab::from_json(meta["vocab"], ckpt + " vocab");
    st = state_from_json(meta["train_state"], ckpt);
  }
  const int64_t channels = resumed ? cfg.vision.channels : o.channels;
  CaptionData train = load_caption_data(o.data_dir + "/train.jsonl", cfg.vision.image_size, channels, o.limit_train, true);
  CaptionData test = load_caption_data(o.data_dir + "/test.jsonl", train.size, channels, o.limit_test, true);
  if (!resumed) {
    std::vector<std::string> all;
    for (auto& e : train.examples) all.insert(all.end(), e.captions.begin(), e.captions.end());
    vocab = text::CaptionVocab::build(all);
    cfg.vision.image_size = train.size;
    cfg.vision.channels = channels;
    cfg.vision.num_classes = 0;
    cfg.decoder.vocab_size = vocab.size();
    cfg.decoder.pad_id = text::CaptionVocab::kPad;
    cfg.decoder.bos_id = text::CaptionVocab::kBos;
    cfg.decoder.eos_id = text::CaptionVocab::kEos;
    if (cfg.decoder.max_len <= 0) {
      size_t longest = 0;
      for (auto& c : all) longest = std::max(longest, text::CaptionVocab::split_words(c).size());
      cfg.decoder.max_len = int64_t(longest) + 2;  // BOS + words + EOS
    }
    if (cfg.vision.pixel_mean.empty()) {  // per-channel statistics of the training images
      std::vector<double> sum(static_cast<size_t>(channels)), sq(static_cast<size_t>(channels));
      for (size_t i = 0; i < train.pixels.size(); ++i) {
        double p = train.pixels[i] / 255.0;
        sum[i % size_t(channels)] += p;
        sq[i % size_t(channels)] += p * p;
      }
      const double n = double(train.pixels.size() / size_t(channels));
      for (int64_t c = 0; c < channels; ++c) {
        double mean = sum[size_t(c)] / n;
        cfg.vision.pixel_mean.push_back(float(mean));
        cfg.vision.pixel_std.push_back(float(std::sqrt(std::max(1e-8, sq[size_t(c)] / n - mean * mean))));
      }
    }
  }
  MMKIT_CHECK(train.size == cfg.vision.image_size, "training images are ", train.size, " pixels, the model expects ",
              cfg.vision.image_size);
  // Encoded references (words only; BOS/EOS are added per batch).
  auto encode_all = [&](const CaptionData& d) {
    std::vector<std::vector<std::vector<int32_t>>> w(size_t(d.n()));
    for (int64_t i = 0; i < d.n(); ++i)
      for (auto& c : d.examples[size_t(i)].captions) w[size_t(i)].push_back(vocab.encode(c));
    return w;
  };
  const auto train_words = encode_all(train), test_words = encode_all(test);

  Captioner m;
  m.init(cfg, o.seed);
  nn::ParamList params = m.parameters();
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  AdamW opt(params, ac);
  if (resumed) {
    resume_from_checkpoint(*ck, params, opt, st.step);
    ck.reset();
    std::fprintf(log, "resuming %s at epoch %d, step %lld\n", o.out_dir.c_str(), st.epoch + 1, (long long)st.step);
  }

  data::Batcher batcher(train.n(), o.batch, o.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t steps_per_epoch = batcher.batches_per_epoch();
  MMKIT_CHECK(steps_per_epoch > 0, "training set of ", train.n(), " images is smaller than one batch of ", o.batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : steps_per_epoch;
  {
    int64_t n_params = 0;
    for (Parameter* p : params) n_params += p->value.numel();
    const VitConfig& v = cfg.vision;
    const CaptionDecoderConfig& dc = cfg.decoder;
    std::fprintf(log,
                 "captioner: ViT %lldx%lld patch %lld dim %lld depth %lld heads %lld mlp %lld (%s) -> decoder dim "
                 "%lld depth %lld heads %lld mlp %lld (%s%s), vocabulary %lld, max %lld tokens, %lld parameters\n"
                 "data: %lld train / %lld test images; %d epochs x %lld steps of %d; %d threads\n",
                 (long long)v.image_size, (long long)v.image_size, (long long)v.patch_size, (long long)v.dim,
                 (long long)v.depth, (long long)v.heads, (long long)v.mlp_dim, v.norm_first ? "pre-norm" : "post-norm",
                 (long long)dc.dim, (long long)dc.depth, (long long)dc.heads, (long long)dc.mlp_dim,
                 dc.norm_first ? "pre-norm" : "post-norm", dc.tie_embeddings ? ", tied LM head" : "",
                 (long long)dc.vocab_size, (long long)dc.max_len, (long long)n_params, (long long)train.n(),
                 (long long)test.n(), o.epochs, (long long)steps_per_epoch, o.batch, num_threads());
  }

  StopSignalScope signals;
  Arena arena;
  Graph g(arena);
  g.training = true;
  const VitConfig& vc = cfg.vision;
  const int64_t V = cfg.decoder.vocab_size;
  Tensor x = Tensor::empty(Shape{o.batch, vc.channels, vc.image_size, vc.image_size});
  std::vector<int64_t> idx;
  const std::string title = "Captioner on " + o.data_dir;

  for (int epoch = st.epoch; epoch < o.epochs; ++epoch) {
    batcher.start_epoch(epoch);
    if (st.batch_in_epoch > 0) batcher.seek(st.batch_in_epoch);
    Progress::Options po;
    po.unit = "img/s";
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), steps_per_epoch * o.batch,
                 stderr, po);
    auto t_epoch = std::chrono::steady_clock::now();
    const double seconds_before = st.epoch_seconds;
    while (batcher.next(&idx)) {
      const int64_t n = int64_t(idx.size());
      std::vector<const std::vector<int32_t>*> words;
      for (int64_t i = 0; i < n; ++i) {
        const auto& refs = train_words[size_t(idx[size_t(i)])];
        uint64_t pick = mix64(o.seed ^ mix64(uint64_t(epoch) * 0x100000001ull + uint64_t(idx[size_t(i)])));
        words.push_back(&refs[size_t(pick % refs.size())]);
      }
      SeqBatch sb = make_batch(words, cfg.decoder);
      caption_input(m, train, idx.data(), n, x.f32());
      g.reset();
      g.seed = mix64(o.seed * 7919 + uint64_t(st.step));
      Var mem = captioner_encode(g, m, g.constant(x));
      Var logits = caption_decoder_forward(g, m.decoder, sb.ids, mem);
      Var flat = ag::reshape(g, logits, Shape{n * sb.T, V});
      Var loss = ag::cross_entropy(g, flat, sb.targets, o.label_smoothing);
      const float lv = g.data(loss)[0];
      MMKIT_CHECK(std::isfinite(lv), "training diverged: loss is ", lv, " at step ", st.step, " (try a lower --lr)");
      g.backward(loss);
      const float lr = warmup_cosine_lr(st.step, warmup, total_steps, o.lr, o.min_lr);
      // Clipping and zeroing fused into AdamW's one pass over the gradients,
      // which are zero on entry (AdamW starts from zeroed buffers and every
      // step zeroes them again).
      opt.step(lr, o.clip_grad > 0 ? clip_scale(grad_norm(params), o.clip_grad) : 1.f, /*zero_grads=*/true);
      ++st.step;
      ++st.batch_in_epoch;
      st.correct += count_correct(g.data(flat), sb.targets.ptr<int32_t>(), n * sb.T, V);
      st.tokens += sb.tokens;
      st.loss_sum += double(lv) * double(sb.tokens);
      st.epoch_seconds =
          seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f acc %.3f lr %.2e", st.loss_sum / double(st.tokens),
                    double(st.correct) / double(st.tokens), lr);
      bar.update(st.batch_in_epoch * o.batch, extra);
      const bool stop = stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps);
      const bool epoch_done = st.batch_in_epoch == steps_per_epoch;
      if (!epoch_done && (stop || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0)))
        save_checkpoint(o.out_dir, m, vocab, opt, st, o);
      if (stop && !epoch_done) {
        bar.finish("stopped");
        std::fprintf(log, "%s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                     stop_signal() ? "interrupted" : "stopped", (long long)st.step, o.out_dir.c_str());
        return st.history;
      }
    }
    bar.finish();
    CaptionEpochRecord rec;
    rec.epoch = epoch + 1;
    rec.train_loss = st.loss_sum / double(std::max<int64_t>(1, st.tokens));
    rec.train_acc = double(st.correct) / double(std::max<int64_t>(1, st.tokens));
    LossAcc te = test_loss(m, test, test_words, o.label_smoothing);
    rec.test_loss = te.loss;
    rec.test_acc = te.acc;
    rec.seconds = st.epoch_seconds;
    rec.images_per_s = st.epoch_seconds > 0 ? double(steps_per_epoch * o.batch) / st.epoch_seconds : 0;
    if (o.val_images > 0) {
      CaptionEvalResult ev = evaluate_captions(m, vocab, test, GenerateOptions{}, o.val_images);
      rec.val_bleu4 = ev.bleu.bleu[3];
      rec.val_cider_d = ev.cider_d;
      if (ev.has_objects) rec.val_object_f1 = ev.objects.f1;
    }
    st.history.push_back(rec);
    std::fprintf(log,
                 "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | greedy on %lld test images: "
                 "object F1 %.4f BLEU-4 %.4f CIDEr-D %.3f | %.1f s, %.0f img/s\n",
                 rec.epoch, o.epochs, rec.train_loss, rec.train_acc, rec.test_loss, rec.test_acc,
                 (long long)std::min(o.val_images, test.n()), rec.val_object_f1, rec.val_bleu4, rec.val_cider_d,
                 rec.seconds, rec.images_per_s);
    std::fflush(log);
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.loss_sum = 0;
    st.tokens = st.correct = 0;
    st.epoch_seconds = 0;
    save_checkpoint(o.out_dir, m, vocab, opt, st, o);
    write_history(o.out_dir, st.history, record_json, curve_point, title);
    if (stop_signal() != 0 || (o.max_steps > 0 && st.step >= o.max_steps)) {
      std::fprintf(log, "stopped after epoch %d; checkpoint saved in %s\n", epoch + 1, o.out_dir.c_str());
      return st.history;
    }
  }
  return st.history;
}

}  // namespace mmkit::train
