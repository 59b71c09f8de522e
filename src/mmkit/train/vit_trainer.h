// Training a ViT image classifier (the main job: `mmkit train vit --data
// fashion-mnist --out DIR`): a task on the shared training loop
// (train/train_loop.h), which owns the run directory, resume, schedule,
// checkpoints and history. Augmentation: random shifts up to aug_shift pixels
// and horizontal flips, drawn from (seed, step, row). Model file: weights +
// metadata "config" (VitConfig JSON), what `mmkit eval vit` and `classify` load (models/vit.h load_vit).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/data/fashion_mnist.h"
#include "mmkit/models/vit.h"
#include "mmkit/train/train_options.h"

namespace mmkit::train {

struct VitTrainOptions : TrainOptions {
  std::string data_dir = data::kFashionMnistDir;
  VitConfig model;
  float label_smoothing = 0.1f;
  bool augment = true;  // random shifts (up to aug_shift pixels) + optional flips
  int aug_shift = 1;    // 1 beats 2 and none on Fashion-MNIST (docs/BENCHMARKS.md)
  bool aug_flip = true;
  VitTrainOptions() {
    epochs = 20;
    batch = 128;
    lr = 1e-3f;
    weight_decay = 0.05f;
  }
};

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double seconds = 0;  // wall time of the epoch's training steps
  double images_per_s = 0;
};

// Runs (or resumes) training; returns the per-epoch history. Throws
// mmkit::Error with a clear message on bad data, directories or checkpoints.
// A SIGINT/SIGTERM during training saves a checkpoint and returns early
// (mmkit::stop_signal() tells which).
std::vector<EpochRecord> train_vit(const VitTrainOptions& opt, std::FILE* log = stderr);

}  // namespace mmkit::train
