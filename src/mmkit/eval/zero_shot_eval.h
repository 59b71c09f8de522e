// Zero-shot classification accuracy of a CLIP model on a labelled image set:
// class embeddings from prompt templates (CLIP's ensembling), top-1/top-5
// and a confusion matrix.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/models/clip.h"
#include "mmkit/text/clip_tokenizer.h"

namespace mmkit {

struct ZeroShotEval {
  double top1 = 0, top5 = 0;
  int64_t n = 0;
  std::vector<int64_t> confusion;  // K*K, row = true class, column = predicted
};

// pixels: N preprocessed images [N, 3, R, R]; targets[i] in [0, labels.size()).
ZeroShotEval zero_shot_accuracy(Clip& m, const text::ClipTokenizer& tok, const float* pixels,
                                const std::vector<int32_t>& targets, const std::vector<std::string>& labels,
                                const std::vector<std::string>& templates, bool show_progress = false);

}  // namespace mmkit
