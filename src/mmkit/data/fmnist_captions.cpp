#include "mmkit/data/fmnist_captions.h"

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/augment.h"
#include "mmkit/image/preprocess.h"

namespace mmkit::data {

const std::vector<std::string>& fmnist_prompt_names() {
  static const std::vector<std::string> n = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                             "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return n;
}

const std::vector<std::string>& fmnist_synonyms(int k) {
  // The prompt name comes first; synonyms are ordinary words for the same
  // garment, so the text tower learns a class from several surface forms.
  static const std::vector<std::vector<std::string>> s = {
      {"t-shirt", "tee", "top", "tee shirt", "short-sleeved top"},
      {"trouser", "trousers", "pants", "pair of trousers", "slacks"},
      {"pullover", "sweater", "jumper", "knit sweater"},
      {"dress", "gown", "frock", "summer dress"},
      {"coat", "jacket", "overcoat", "winter coat"},
      {"sandal", "sandals", "open shoe", "summer sandal"},
      {"shirt", "button-up shirt", "collared shirt", "blouse"},
      {"sneaker", "trainer", "running shoe", "sports shoe"},
      {"bag", "handbag", "purse", "tote bag"},
      {"ankle boot", "boot", "short boot", "bootie"},
  };
  MMKIT_CHECK(k >= 0 && k < int(s.size()), "Fashion-MNIST class ", k, " out of range 0..9");
  return s[size_t(k)];
}

const std::vector<std::string>& fmnist_train_templates() {
  static const std::vector<std::string> t = {
      "a photo of a {}.",           "a picture of a {}.",
      "an image of a {}.",          "a {}.",
      "a black and white photo of a {}.", "a grayscale picture of the {}.",
      "a small photo of a {}.",     "this is a {}.",
      "a product photo of a {}.",   "a {} on a dark background.",
      "a blurry image of a {}.",    "a centered photo of the {}.",
      "a catalogue image of a {}.", "my {}.",
      "a photo of my {}.",          "a tiny {}.",
      "a picture of the {}.",       "there is a {} in this image.",
  };
  return t;
}

const std::vector<std::string>& fmnist_heldout_templates() {
  // None of these occurs in training (checked by a test).
  static const std::vector<std::string> t = {
      "a low resolution photo of a {}.", "a cropped photo of the {}.", "a close-up photo of a {}.",
      "itap of a {}.",                   "a good photo of the {}.",    "a pixelated photo of a {}.",
      "a photo of the {}, a type of clothing.",
  };
  return t;
}

std::string fill_template(const std::string& tmpl, const std::string& name) {
  size_t p = tmpl.find("{}");
  MMKIT_CHECK(p != std::string::npos && tmpl.find("{}", p + 2) == std::string::npos,
              "prompt template '", tmpl, "' must contain exactly one {}");
  return tmpl.substr(0, p) + name + tmpl.substr(p + 2);
}

std::string fmnist_caption(int label, uint64_t seed) {
  const auto& names = fmnist_synonyms(label);
  const auto& tmpls = fmnist_train_templates();
  Rng r(mix64(seed));
  const std::string& tmpl = tmpls[size_t(r.next_u64() % tmpls.size())];
  const std::string& name = names[size_t(r.next_u64() % names.size())];
  return fill_template(tmpl, name);
}

void fmnist_to_clip_pixels(const ImageSet& set, const int64_t* idx, int64_t n, float* out) {
  const PreprocessConfig pre = preprocess_preset("clip", int(set.rows));
  const int64_t HW = set.rows * set.cols;
  MMKIT_CHECK(set.channels == 1, "Fashion-MNIST images should be gray, got ", set.channels, " channels");
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = set.image(idx[i]);
    for (int c = 0; c < 3; ++c) {
      float* o = out + (i * 3 + c) * HW;
      for (int64_t p = 0; p < HW; ++p) o[p] = (float(src[p]) / 255.f - pre.mean[size_t(c)]) / pre.std[size_t(c)];
    }
  }
}

std::vector<float> fmnist_clip_pixels(const ImageSet& set, int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
  std::vector<float> out(size_t(n * 3 * set.rows * set.cols));
  fmnist_to_clip_pixels(set, idx.data(), n, out.data());
  return out;
}

std::string fmnist_clip_pair(const ImageSet& set, int64_t k, uint64_t row_seed, bool augment, float* out) {
  ImageSet one;  // the (augmented) image alone, through fmnist_to_clip_pixels
  one.rows = set.rows;
  one.cols = set.cols;
  one.channels = 1;
  one.n = 1;
  one.pixels.resize(size_t(set.rows * set.cols));
  if (augment)
    augment_random_crop_flip(set.image(k), set.rows, set.cols, 1, true, row_seed, one.pixels.data());
  else
    std::copy(set.image(k), set.image(k) + one.pixels.size(), one.pixels.begin());
  const int64_t zero = 0;
  fmnist_to_clip_pixels(one, &zero, 1, out);
  return fmnist_caption(set.labels[size_t(k)], row_seed ^ 0xC4A7105Eull);
}

std::vector<std::string> fmnist_training_captions() {
  std::vector<std::string> corpus;
  for (int k = 0; k < 10; ++k)
    for (const auto& name : fmnist_synonyms(k))
      for (const auto& t : fmnist_train_templates()) corpus.push_back(fill_template(t, name));
  return corpus;
}

}  // namespace mmkit::data
