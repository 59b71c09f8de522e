// VQA batches of a data set and the model's accuracy on it: groups of images
// with all their questions (each image encoded once per batch), soft answer
// targets, and accuracy overall, per question type and relational or not.
// Shared by `mmkit train vqa` (training batches, per-epoch evaluation) and
// `mmkit eval vqa`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mmkit/data/vqa_dataset.h"
#include "mmkit/eval/vqa_accuracy.h"
#include "mmkit/models/vqa.h"

namespace mmkit {

// Builds the inputs for a group of images and all their questions: targets
// [Bq, K] are the answers' soft scores normalised to sum 1. Questions with no
// in-vocabulary answer are skipped when `drop_unanswerable`, relational ones
// when `skip_relational`. Token ids are cached per example.
class VqaBatchBuilder {
 public:
  VqaBatchBuilder(const Vqa& model, const data::VqaDataset& data, const AnswerVocab& answers);
  // Returns the example indices in batch order.
  std::vector<int64_t> build(const std::vector<int64_t>& image_ids, bool drop_unanswerable, VqaBatch* b,
                             Tensor* targets, bool skip_relational = false);

 private:
  const Vqa& m_;
  const data::VqaDataset& d_;
  const AnswerVocab& answers_;
  std::vector<std::vector<int32_t>> token_cache_;  // per example, filled lazily
};

// Index of the largest of x[0..K).
int64_t argmax_row(const float* x, int64_t K);

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

VqaEvalResult evaluate_vqa(Vqa& m, const data::VqaDataset& d, int images_per_batch = 16, bool show_progress = false);

}  // namespace mmkit
