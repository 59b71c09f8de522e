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
// A task on the shared training loop (train/train_loop.h). Checkpoint and
// model.safetensors also hold the vocabulary (metadata "vocab"); history.json
// adds, per epoch, the greedy captions' object F1 / BLEU-4 / CIDEr-D on the
// first val_images test images. References depend on (seed, epoch, image), so
// resume is step-exact.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/models/captioner.h"
#include "mmkit/train/train_options.h"

namespace mmkit::train {

struct CaptionTrainOptions : TrainOptions {
  std::string data_dir;   // holds train.jsonl + test.jsonl, or is the training JSONL (data_files())
  std::string test_data;  // the held-out JSONL (default: data_dir/test.jsonl)
  // Hyper-parameters; the vocabulary size and (when 0) the image size and
  // max_len are taken from the data, the input channels from `channels`.
  CaptionerConfig model;
  int64_t channels = 3;       // images are converted to RGB (3) or gray (1)
  float label_smoothing = 0.1f;
  int64_t val_images = 200;   // greedy-decoded test images per epoch (0: none)
  CaptionTrainOptions() {
    epochs = 30;
    batch = 64;
    lr = 1e-3f;
    weight_decay = 0.05f;
  }
};

struct CaptionEpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;  // acc: next-word top-1
  double val_object_f1 = NAN, val_bleu4 = NAN, val_cider_d = NAN;
  double seconds = 0;        // training steps of the epoch (wall)
  double images_per_s = 0;
};

std::vector<CaptionEpochRecord> train_captioner(const CaptionTrainOptions& opt, std::FILE* log = stderr);

}  // namespace mmkit::train
