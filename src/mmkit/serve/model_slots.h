// Models the server can host next to CLIP, behind plain function types so the
// server does not depend on how each model is built. An empty slot means "not
// loaded": its route answers 501 {"error": {"code": "not_loaded", ...}} and
// /healthz reports it false (the web page then hides its controls).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit::serve {

struct LabelProb {
  std::string label;
  float prob = 0;
};

// Visual question answering: (image, question) -> answer text.
using VqaFn = std::function<std::string(const Image&, const std::string& question)>;
// Captioning: image -> caption text.
using CaptionFn = std::function<std::string(const Image&)>;
// Image classification with a trained classifier: image -> classes, most probable first.
using ClassifyFn = std::function<std::vector<LabelProb>(const Image&)>;

}  // namespace mmkit::serve
