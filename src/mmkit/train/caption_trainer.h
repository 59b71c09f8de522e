// Training and evaluation of the image captioner (models/captioner.h):
// `mmkit train caption --data DIR --out RUN`, `mmkit eval caption`.
//
// DIR holds train.jsonl and test.jsonl (data/caption_jsonl.h; `mmkit data
// soc-captions` writes one). Every epoch visits each training image once with
// one of its references, chosen by (seed, epoch, image); the loss is the
// label-smoothed cross-entropy of the next word (teacher forcing) over the
// caption's words and EOS (padding ignored). The word vocabulary is built
// from the training captions and saved with the weights.
//
// RUN layout (as the ViT trainer's, train/vit_trainer.h):
//   checkpoint.safetensors  weights + AdamW moments + metadata "config"
//                           (CaptionerConfig JSON), "vocab", "train_state";
//                           atomic, every checkpoint_every steps and at epoch ends
//   model.safetensors       weights + "config" + "vocab" (what eval/caption load)
//   training_curves.png     loss and next-word accuracy per epoch
//   history.json            per epoch: losses, accuracies, and the greedy
//                           captions' object F1 / BLEU-4 / CIDEr-D on the first
//                           val_images test images, time
// --resume continues step for step (data order, dropout and references
// depend only on seed, epoch and step); SIGINT/SIGTERM saves and returns.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/data/caption_jsonl.h"
#include "mmkit/eval/caption_generate.h"
#include "mmkit/eval/caption_metrics.h"
#include "mmkit/image/image.h"
#include "mmkit/models/captioner.h"
#include "mmkit/text/caption_vocab.h"

namespace mmkit::train {

struct CaptionTrainOptions {
  std::string data_dir;  // train.jsonl + test.jsonl
  std::string out_dir;
  // Hyper-parameters; the vocabulary size and (when 0) the image size and
  // max_len are taken from the data, the input channels from `channels`.
  CaptionerConfig model;
  int64_t channels = 3;       // images are converted to RGB (3) or gray (1)
  int epochs = 30;
  int batch = 64;
  float lr = 1e-3f;
  float min_lr = 1e-5f;
  float weight_decay = 0.05f;
  int64_t warmup_steps = -1;  // < 0: one epoch
  float label_smoothing = 0.1f;
  float clip_grad = 1.0f;     // <= 0: off
  uint64_t seed = 0;
  int threads = 0;            // <= 0: all cores
  int64_t checkpoint_every = 200;
  bool resume = false;
  int64_t limit_train = 0, limit_test = 0;  // > 0: first N images only
  int64_t max_steps = 0;      // > 0: stop (with a checkpoint) after this global step
  int64_t val_images = 200;   // greedy-decoded test images per epoch (0: none)
};

struct CaptionEpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;  // acc: next-word top-1
  double val_object_f1 = NAN, val_bleu4 = NAN, val_cider_d = NAN;
  double seconds = 0;        // training steps of the epoch (wall)
  double images_per_s = 0;
};

// Images of a caption set, decoded once, converted to `channels` and
// resized (bilinear) to size x size.
struct CaptionData {
  std::vector<data::CaptionExample> examples;
  int64_t size = 0, channels = 3;
  std::vector<uint8_t> pixels;  // [n, size, size, channels]
  int64_t n() const { return int64_t(examples.size()); }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * size * size * channels; }
};
// image_size 0: the first image's width. limit > 0: first `limit` images.
CaptionData load_caption_data(const std::string& jsonl, int64_t image_size, int64_t channels, int64_t limit,
                              bool progress);

struct CaptionModel {
  Captioner model;
  text::CaptionVocab vocab;
};
// DIR/model.safetensors or a .safetensors path written by the trainer.
CaptionModel load_captioner(const std::string& path);

// Normalised model input [n, C, S, S] for images idx[0..n) of `d`.
void caption_input(const Captioner& m, const CaptionData& d, const int64_t* idx, int64_t n, float* out);
// Same for decoded images of any size/channels (converted and resized).
Tensor caption_input(const Captioner& m, const std::vector<Image>& images);

struct CaptionEvalResult {
  int64_t images = 0;
  BleuScore bleu;
  double cider_d = 0;
  bool has_objects = false;  // the data carries objects: object F1 is meaningful
  ObjectF1 objects;
  double seconds = 0;        // encoding + generation + decoding to text
  std::vector<std::string> captions;
};
// Captions the first `limit` (0: all) images of `d` and scores them against
// their references.
CaptionEvalResult evaluate_captions(Captioner& m, const text::CaptionVocab& vocab, const CaptionData& d,
                                    const GenerateOptions& g, int64_t limit = 0, bool progress = false,
                                    int batch = 100);

std::vector<CaptionEpochRecord> train_captioner(const CaptionTrainOptions& opt, std::FILE* log = stderr);

}  // namespace mmkit::train
