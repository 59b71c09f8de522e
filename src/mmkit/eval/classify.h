// Labelling image files with a trained ViT classifier.
#pragma once
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/models/vit.h"

namespace mmkit {

struct Classification {
  int64_t label = 0;
  std::string name;           // class name (or the index as text)
  float probability = 0;
  std::vector<float> probs;   // [K], softmax of the logits
};

// Converts each image to the model's channels and size (gray/RGB, bilinear
// resize with area averaging when shrinking) and classifies it.
std::vector<Classification> classify_images(Vit& vit, const std::vector<Image>& images);

}  // namespace mmkit
