// Training and evaluation of the VQA model (`mmkit train vqa --data DIR --out
// DIR`, `mmkit eval vqa`), on any data set in the VQA JSONL layout
// (data/vqa_jsonl.h): DIR/train.jsonl and DIR/test.jsonl, e.g. the output of
// `mmkit data sort-of-clevr`.
//
// Batches are groups of images with all their questions: each image is
// encoded once per step and its tokens reach every question about it.
// Targets: the soft scores of the answer vocabulary (eval/vqa_accuracy.h),
// normalised to sum 1, under softmax cross-entropy (ag::soft_cross_entropy).
// Why not VQA v2's per-answer binary cross-entropy: with one correct answer
// per question (Sort-of-CLEVR) the soft target is one-hot and this is exactly
// the classification likelihood, whose softmax couples the answers (one
// gradient step lowers every competitor) — BCE treats K independent
// sigmoids and learns slower for mutually exclusive answers; with several
// annotators it still fits the annotators' answer distribution.
// Questions whose answers are all outside the vocabulary are dropped from
// training (counted in the log) and score 0 in evaluation.
//
// OUT layout, conventions as train/vit_trainer.h: checkpoint.safetensors
// (weights + AdamW moments + "config" + "train_state", atomic, every
// checkpoint_every steps and at epoch ends), model.safetensors (weights +
// config), training_curves.png, history.json. --resume continues a run step
// for step (image order depends only on (seed, epoch)); SIGINT/SIGTERM save a
// checkpoint and stop.
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "mmkit/data/vqa_jsonl.h"
#include "mmkit/models/vqa.h"

namespace mmkit::train {

struct VqaTrainOptions {
  std::string data_dir;  // holds train.jsonl and test.jsonl
  std::string out_dir;
  VqaConfig model;       // sizes; vocab and answers come from the data
  int64_t top_k_answers = 3129;  // VQA v2's answer vocabulary size
  int epochs = 12;
  int images_per_batch = 8;      // each with all its questions (Sort-of-CLEVR: 160 questions)
  float lr = 1e-3f;
  float min_lr = 1e-5f;
  float weight_decay = 0.05f;
  int64_t warmup_steps = -1;     // < 0: half an epoch
  float clip_grad = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  int64_t checkpoint_every = 500;
  bool resume = false;
  int64_t limit_train = 0;       // > 0: only the first N training images
  int64_t limit_test = 0;
  int64_t max_steps = 0;         // > 0: stop after this global step
  // Curriculum: the first N epochs train on the non-relational questions only (examples with
  // "relational": true are skipped), the rest on all questions.
  int non_relational_epochs = 0;
};

// A JSONL data set with its images decoded (in parallel) and grouped.
struct VqaDataset {
  std::vector<data::VqaExample> examples;
  std::vector<std::string> image_paths;
  std::vector<Image> images;                        // decoded, index-aligned with image_paths
  std::vector<std::vector<int64_t>> questions_of;  // per image: example indices
};
// limit_images > 0 keeps the questions of the first N distinct images.
VqaDataset load_vqa_dataset(const std::string& jsonl, int64_t limit_images = 0, bool show_progress = false);

struct TypeAccuracy {
  int64_t n = 0;
  double accuracy = 0;  // mean VQA accuracy
};

struct VqaEvalResult {
  double accuracy = 0, loss = 0;  // loss: mean soft cross-entropy over questions with in-vocabulary answers
  int64_t n = 0;
  std::map<std::string, TypeAccuracy> per_type;  // by the data's "type" ("" when absent)
  TypeAccuracy relational, non_relational;
  double seconds = 0;
};

VqaEvalResult evaluate_vqa(Vqa& m, const VqaDataset& d, int images_per_batch = 16, bool show_progress = false);

struct VqaEpochRecord {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double test_acc_relational = 0, test_acc_non_relational = 0;
  double seconds = 0, questions_per_s = 0;
};

std::vector<VqaEpochRecord> train_vqa(const VqaTrainOptions& o, std::FILE* log = stderr);
int last_vqa_stop_signal();

}  // namespace mmkit::train
