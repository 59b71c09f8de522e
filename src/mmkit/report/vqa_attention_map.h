// Where a VQA model looked: the text->image cross-attention of each fusion
// layer, averaged over heads and over the question's words (padding
// excluded), and, for a model with hop attention (nn/hop_attention.h), each
// head's two hops over the stem cells, drawn as heat overlays on the input image.
//
//   mmkit::VqaAnswer a = mmkit::answer_question(m, img, "What is the shape of the red object?", &maps);
//   mmkit::write_attention_map("att.png", img, maps, question, a.answer, a.probability);
//
// The figure: the image, then one panel per map (image scaled up, darkened
// where attention is low, with a red heat tint where it is high, and the
// G x G grid), each captioned with its label; the question and answer as a title.
#pragma once
#include <string>
#include <vector>

#include "mmkit/image/image.h"
#include "mmkit/infer/vqa_answer.h"

namespace mmkit {


void write_attention_map(const std::string& png_path, const Image& image, const std::vector<PatchAttention>& layers,
                         const std::string& question, const std::string& answer, float probability);

}  // namespace mmkit
