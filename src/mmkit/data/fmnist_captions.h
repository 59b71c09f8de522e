// Captions for Fashion-MNIST images, generated from class names, synonyms and
// varied templates: the zero-setup image-text dataset of `mmkit train clip`.
//
//   std::string c = mmkit::data::fmnist_caption(label, seed);   // e.g. "a grainy photo of a sneaker."
//
// Zero-shot evaluation uses the canonical class prompts (fmnist_prompt_names)
// with templates that never occur in training (fmnist_heldout_templates), so
// it measures generalisation to new wordings, not memorised captions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/data/fashion_mnist.h"

namespace mmkit::data {

// One lower-case name per class, used as the zero-shot label text
// ("t-shirt", "trouser", ..., "ankle boot"); index = Fashion-MNIST label.
const std::vector<std::string>& fmnist_prompt_names();
// Names a caption may use for class k (the prompt name first, then synonyms).
const std::vector<std::string>& fmnist_synonyms(int k);
// Templates with "{}" for the name; training and held-out sets are disjoint.
const std::vector<std::string>& fmnist_train_templates();
const std::vector<std::string>& fmnist_heldout_templates();

// Deterministic caption for class `label` (0..9) from (seed): a training
// template filled with one of the class's names.
std::string fmnist_caption(int label, uint64_t seed);

// "{}" in `tmpl` replaced by `name` (the only placeholder; an error otherwise).
std::string fill_template(const std::string& tmpl, const std::string& name);

// Fashion-MNIST images idx[0..n) as CLIP input [n, 3, 28, 28]: gray
// replicated to RGB and normalised with CLIP's mean/std, exactly what the
// "clip" preprocessing does to the same image saved as a 28x28 PNG.
void fmnist_to_clip_pixels(const ImageSet& set, const int64_t* idx, int64_t n, float* out);
// The first n images of `set` as CLIP input (zero-shot evaluation sets).
std::vector<float> fmnist_clip_pixels(const ImageSet& set, int64_t n);

// Training pair for image k of `set`: its CLIP input (shifted <= 1 px and
// flipped when `augment`) into out [3, 28, 28], and a caption of its class,
// both drawn from `row_seed`.
std::string fmnist_clip_pair(const ImageSet& set, int64_t k, uint64_t row_seed, bool augment, float* out);

// Every training caption (each class name x each training template): the
// corpus a tokenizer for Fashion-MNIST captions is learned from.
std::vector<std::string> fmnist_training_captions();

}  // namespace mmkit::data
