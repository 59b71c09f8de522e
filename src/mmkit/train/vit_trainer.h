// Training and evaluation of a ViT image classifier (the main job:
// `mmkit train vit --data fashion-mnist --out DIR`).
//
// DIR layout:
//   checkpoint.safetensors  weights + AdamW moments ("optim.exp_avg.<name>",
//                           "optim.exp_avg_sq.<name>") + metadata "config"
//                           (VitConfig JSON) and "train_state" (step, epoch,
//                           options, per-epoch history); written atomically
//                           every `checkpoint_every` steps and at epoch ends
//   model.safetensors       weights + "config" only (what eval/classify load)
//   training_curves.png     loss and accuracy per epoch
//   history.json            the same per-epoch numbers as text
// Resuming restores weights, moments, step and the data order (the shuffle
// depends only on (seed, epoch); augmentation and dropout on (seed, step)),
// so a resumed run continues the interrupted one step for step.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/data/fashion_mnist.h"
#include "mmkit/models/vit.h"

namespace mmkit::train {

struct VitTrainOptions {
  std::string data_dir = data::kFashionMnistDir;
  std::string out_dir;
  VitConfig model;
  int epochs = 20;
  int batch = 128;
  float lr = 1e-3f;
  float min_lr = 1e-5f;
  float weight_decay = 0.05f;
  int64_t warmup_steps = -1;   // < 0: one epoch
  float label_smoothing = 0.1f;
  float clip_grad = 1.0f;      // <= 0: off
  bool augment = true;         // random shifts (up to aug_shift pixels) + optional flips
  int aug_shift = 1;  // 1 beats 2 and none on Fashion-MNIST (docs/BENCHMARKS.md)
  bool aug_flip = true;
  uint64_t seed = 0;
  int threads = 0;             // <= 0: all cores
  int64_t checkpoint_every = 200;  // steps; epoch ends always checkpoint
  bool resume = false;
  int64_t limit_train = 0;     // > 0: use only the first N training images (tests, smoke runs)
  int64_t limit_test = 0;
  int64_t max_steps = 0;       // > 0: stop after this global step (tests of kill/resume)
};

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double seconds = 0;  // wall time of the epoch's training steps
  double images_per_s = 0;
};

struct EvalResult {
  double accuracy = 0, loss = 0;
  int64_t n = 0;
  std::vector<int64_t> confusion;  // K*K, row = true class, column = predicted
};

// Runs (or resumes) training; returns the per-epoch history. Throws
// mmkit::Error with a clear message on bad data, directories or checkpoints.
// A SIGINT/SIGTERM during training saves a checkpoint and returns early.
std::vector<EpochRecord> train_vit(const VitTrainOptions& opt, std::FILE* log = stderr);

// The signal (SIGINT/SIGTERM) that stopped the last train_vit() call, or 0.
int last_stop_signal();

// Accuracy, mean cross-entropy and confusion matrix over a dataset.
EvalResult evaluate_vit(Vit& vit, const data::ImageSet& set, int batch = 256,
                        bool show_progress = false);

// Loads DIR/model.safetensors (or a .safetensors path) into a ready model:
// mmkit's own files, torchvision VisionTransformer (vit_b_16 names; the head
// count comes from the file's metadata {"num_heads": N} or `heads`), or
// Hugging Face ViTForImageClassification (config.json beside the file).
Vit load_vit(const std::string& model_path, int64_t heads = 0);

// Converts images [i0, i0+n) of `set` (optionally a custom index list) into
// the model's normalised input [n, C, H, W].
void images_to_input(const Vit& vit, const data::ImageSet& set, const int64_t* idx, int64_t n,
                     float* out);

}  // namespace mmkit::train
