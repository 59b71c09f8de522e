// Captioning decoded images with a trained captioner: the one path `mmkit
// caption` and the server's /v1/caption share (fit + normalise, encode once,
// greedy or beam search, words back to text).
//
//   mmkit::CaptionModel m = mmkit::load_captioner("runs/cap");
//   mmkit::GenerateOptions g;  g.beam = 3;
//   auto caps = mmkit::caption_images(m, {mmkit::decode_image_file("scene.png")}, g);
//   // caps[0].text == "a red circle is left of a blue square .", caps[0].gen.log_prob, ...
//
// Errors (mmkit::Error): beam width, length penalty or max_tokens out of range
// (check_generate_options in caption_generate.h, before any compute).
#pragma once
#include <string>
#include <vector>

#include "mmkit/infer/caption_generate.h"
#include "mmkit/image/image.h"
#include "mmkit/models/captioner.h"

namespace mmkit {

struct ImageCaption {
  std::string text;      // decoded words of gen.tokens
  GeneratedCaption gen;  // tokens, log-probability, score, finished, attention
};

// One caption per image, in order. The model's weights are only read, but the
// encoder runs through an autograd graph: callers serialise calls per model.
std::vector<ImageCaption> caption_images(CaptionModel& m, const std::vector<Image>& images,
                                         const GenerateOptions& g);

}  // namespace mmkit
