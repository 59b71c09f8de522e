// A ViT classifier on a labelled image set: accuracy, mean cross-entropy and
// the confusion matrix (`mmkit eval vit`, and the per-epoch evaluation of
// `mmkit train vit`).
#pragma once
#include <cstdint>
#include <vector>

#include "mmkit/data/fashion_mnist.h"
#include "mmkit/models/vit.h"

namespace mmkit {

struct VitEvalResult {
  double accuracy = 0, loss = 0;
  int64_t n = 0;
  std::vector<int64_t> confusion;  // K*K, row = true class, column = predicted
};

VitEvalResult evaluate_vit(Vit& vit, const data::ImageSet& set, int batch = 256, bool show_progress = false);

// Converts images idx[0..n) of `set` into the model's normalised input
// [n, C, H, W] (the set's images must have the model's size and channels).
void images_to_input(const Vit& vit, const data::ImageSet& set, const int64_t* idx, int64_t n, float* out);

}  // namespace mmkit
