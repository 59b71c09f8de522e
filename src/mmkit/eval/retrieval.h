// Cross-modal retrieval metrics: recall@K in both directions over a set of
// normalised image and text embeddings.
#pragma once
#include <cstdint>
#include <vector>

#include "mmkit/core/tensor.h"

namespace mmkit {

struct RetrievalResult {
  std::vector<int> ks = {1, 5, 10};
  std::vector<double> image_to_text;  // recall@k per ks: an image is a hit when one of its texts ranks in the top k
  std::vector<double> text_to_image;  // a text is a hit when its image ranks in the top k
  int64_t images = 0, texts = 0;
};

// img [Ni, E], txt [Nt, E] (L2-normalised rows; cosine similarity ranks).
// A (image i, text j) pair matches when image_group[i] == text_group[j]:
// the image id for the usual per-pair recall, or a class id for class-level
// recall. Ties rank against the query (a tied wrong item counts as above).
RetrievalResult retrieval_recall(const Tensor& img, const Tensor& txt, const std::vector<int64_t>& image_group,
                                 const std::vector<int64_t>& text_group, std::vector<int> ks = {1, 5, 10});

}  // namespace mmkit
