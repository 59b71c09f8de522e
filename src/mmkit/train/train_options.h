// The options every training run shares (`mmkit train <model>` registers them
// once, apps/cli/train_commands.cpp). A model's options struct derives from
// this one and sets its own defaults in its constructor.
#pragma once
#include <cstdint>
#include <string>

namespace mmkit::train {

struct TrainOptions {
  std::string out_dir;             // checkpoints, model file, history, curves
  int epochs = 10;
  int batch = 128;                 // items per step (VQA: images, each with all its questions)
  float lr = 1e-3f;                // peak of the warmup + cosine schedule
  float min_lr = 1e-5f;            // end of the cosine
  float weight_decay = 0.05f;      // AdamW, decoupled
  int64_t warmup_steps = -1;       // < 0: the task's default (one epoch; VQA half an epoch)
  float clip_grad = 1.0f;          // max global gradient norm; <= 0: off
  uint64_t seed = 0;               // weights, data order, augmentation, dropout
  int threads = 0;                 // <= 0: all cores
  int64_t checkpoint_every = 200;  // steps; epoch ends always checkpoint
  bool resume = false;             // continue the run in out_dir step for step
  int64_t limit_train = 0;         // > 0: only the first N training items (tests, smoke runs)
  int64_t limit_test = 0;
  int64_t max_steps = 0;           // > 0: stop (with a checkpoint) after this global step
};

}  // namespace mmkit::train
