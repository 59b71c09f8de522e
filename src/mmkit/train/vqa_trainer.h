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
// Model selection: the last val_images training images (with all their
// questions) are held out as a validation split. Each epoch ends with an
// evaluation on it (per question type, in history.json as val_*), and
// model.safetensors holds the weights of the epoch with the best validation
// accuracy so far (ties: the later epoch). The test split is evaluated once,
// with the selected weights, after the last epoch (test_* of the last
// record, selected_epoch). With val_images 0 there is no validation split and
// every epoch is evaluated on the test split, as before issue #21.
//
// A task on the shared training loop (train/train_loop.h); model.safetensors
// holds the weights + config (with the word and answer vocabularies).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/models/vqa.h"
#include "mmkit/train/train_options.h"

namespace mmkit::train {

struct VqaTrainOptions : TrainOptions {
  std::string data_dir;          // holds train.jsonl and test.jsonl, or is the training JSONL (data_files())
  std::string test_data;         // the held-out JSONL (default: data_dir/test.jsonl)
  VqaConfig model;               // sizes; vocab and answers come from the data
  int64_t top_k_answers = 3129;  // VQA v2's answer vocabulary size
  // Curriculum: the first N epochs train on the non-relational questions only (examples with
  // "relational": true are skipped), the rest on all questions.
  int non_relational_epochs = 0;
  // Validation split: the last N training images; < 0: 5% of them (at least 1 when there are 2
  // or more), 0: none (select the last epoch; evaluate the test split every epoch).
  int64_t val_images = -1;
  // `batch` counts images, each with all its questions;
  // limit_train / limit_test count images too.
  VqaTrainOptions() {
    epochs = 12;
    batch = 8;
    lr = 1e-3f;
    weight_decay = 0.05f;
  }
};

// The recipe `mmkit train vqa` runs by default (docs/RESULTS.md, "VQA on Sort-of-CLEVR"): the
// model and optimiser settings above the library's plain defaults. Data and output folders
// are left empty.
VqaTrainOptions vqa_recipe();

struct VqaEpochRecord {
  int epoch = 0;
  double train_loss = 0, train_acc = 0;
  // The validation split (NaN without one).
  double val_loss = 0, val_acc = 0, val_acc_relational = 0, val_acc_non_relational = 0;
  // The test split: every epoch without a validation split; with one, only in the last record,
  // of the selected weights (NaN in the others).
  double test_loss = 0, test_acc = 0, test_acc_relational = 0, test_acc_non_relational = 0;
  int selected_epoch = 0;  // the epoch whose weights model.safetensors holds (last record; else 0)
  double seconds = 0, questions_per_s = 0;
};

std::vector<VqaEpochRecord> train_vqa(const VqaTrainOptions& o, std::FILE* log = stderr);

}  // namespace mmkit::train
