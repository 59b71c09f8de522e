// Models the server can host next to CLIP whose construction the server does
// not know about, behind plain function types. An empty slot means "not
// loaded": its route answers 501 {"error": {"code": "not_loaded", ...}} and
// /healthz reports it false (the web page then hides its controls). VQA and
// captioning are served through serve/vqa_service.h and serve/caption_service.h.
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

// Image classification with a trained classifier: image -> classes, most probable first.
using ClassifyFn = std::function<std::vector<LabelProb>(const Image&)>;

}  // namespace mmkit::serve
