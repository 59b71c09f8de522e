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
  std::vector<float> logits;  // [K]
};

// Converts each image with the model's preprocessing (cfg.preprocess preset,
// e.g. "imagenet" for torchvision models; otherwise gray/RGB conversion and a
// bilinear resize to image_size) and classifies it.
std::vector<Classification> classify_images(Vit& vit, const std::vector<Image>& images);

// The k most probable classes of c, most probable first (ties: lower index first): `mmkit classify`'s
// list and the Python module's "top".
std::vector<size_t> top_classes(const Classification& c, int k);

}  // namespace mmkit
