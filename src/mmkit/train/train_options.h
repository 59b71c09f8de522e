// The options every training run shares (`mmkit train <model>` registers them
// once, apps/cli/train_commands.cpp). A model's options struct derives from
// this one and sets its own defaults in its constructor.
#pragma once
#include <cstdint>
#include <string>

#include "mmkit/core/error.h"
#include "mmkit/util/file_util.h"

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
  // "fp32" or "bf16": what the matmul family computes in (Graph::precision: bf16 operands with
  // f32 accumulation; weights, optimizer state, reductions and checkpoints stay f32).
  std::string precision = "fp32";
};

// `--data` of the JSONL trainers (VQA, captioning): a folder holding
// train.jsonl and test.jsonl, or a training JSONL file whose held-out images
// are in `test_data` (required then).
struct DataFiles {
  std::string train, test;
};
inline DataFiles data_files(const std::string& data, const std::string& test_data) {
  MMKIT_CHECK(!data.empty(), "no training data given (--data: a folder with train.jsonl and test.jsonl, or a JSONL file)");
  if (is_directory(data) || !path_exists(data))  // a folder (a missing one: its train.jsonl is named missing)
    return {data + "/train.jsonl", test_data.empty() ? data + "/test.jsonl" : test_data};
  MMKIT_CHECK(!test_data.empty(), "--data ", data, " is a file: pass --test-data FILE.jsonl with held-out images "
              "(evaluated after each epoch), or a folder holding train.jsonl and test.jsonl");
  return {data, test_data};
}

}  // namespace mmkit::train
