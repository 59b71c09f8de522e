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

}  // namespace mmkit::data
