// Answering one question about one image with a trained VQA model.
//
//   mmkit::Vqa m = mmkit::load_vqa("runs/soc");
//   std::vector<mmkit::PatchAttention> maps;
//   auto a = mmkit::answer_question(m, mmkit::decode_image_file("scene.png"), "Is the red object on the left or on the right?", &maps);
//   // a.answer == "left", a.probability, a.top (best answers first)
//
// Errors (mmkit::Error): empty question, unknown word (named), too many words.
// check_question reports the same problems without throwing, typed, so a
// server can answer each with its own error code before decoding the image.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/models/vqa.h"

namespace mmkit {

// One attention map over the image's G x G patch grid (drawn by
// report/vqa_attention_map.h).
struct PatchAttention {
  int grid = 0;             // G: patches per side
  std::vector<float> map;   // G*G weights (row-major patches), summing to 1
  std::string label;        // panel caption (empty: "fusion layer N")
};

struct VqaAnswer {
  std::string answer;
  float probability = 0;
  std::vector<std::pair<std::string, float>> top;  // up to top_k answers, most probable first
};

// What stops a question from being asked of model m (checked before any compute).
struct QuestionProblem {
  enum Kind { none, empty, unknown_word, too_long, bad_text };
  Kind kind = none;
  std::string word;     // unknown_word: the first word the model does not know
  std::string message;  // the error answer_question would throw, naming the word or the counts
  explicit operator bool() const { return kind != none; }
};
QuestionProblem check_question(const Vqa& m, const std::string& question);

// maps (optional) receives the text->image attention of each fusion layer,
// averaged over heads and words, then (cfg.hop_heads > 0) for each hop-attention
// head its two hops over the stem cells, labelled "head h: find" and
// "head h: nearest" / "head h: furthest" (by the sign of the head's beta).
VqaAnswer answer_question(Vqa& m, const Image& img, const std::string& question,
                          std::vector<PatchAttention>* maps = nullptr, int top_k = 5);

}  // namespace mmkit
