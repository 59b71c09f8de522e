#include "mmkit/infer/classify.h"

#include <algorithm>

#include "mmkit/autograd/functions.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/image/to_tensor.h"

namespace mmkit {

std::vector<Classification> classify_images(Vit& vit, const std::vector<Image>& images) {
  const VitConfig& c = vit.cfg;
  const int64_t n = int64_t(images.size()), S = c.image_size, K = c.num_classes;
  std::vector<Classification> out;
  if (n == 0) return out;
  Tensor x = Tensor::empty(Shape{n, c.channels, S, S});
  if (!c.preprocess.empty()) {
    PreprocessConfig pre = preprocess_preset(c.preprocess, int(S));
    MMKIT_CHECK(c.channels == 3, "preset '", c.preprocess, "' needs a 3-channel model");
    for (int64_t i = 0; i < n; ++i) preprocess_image(images[size_t(i)], pre, x.f32() + i * 3 * S * S);
  }
  for (int64_t i = 0; i < n && c.preprocess.empty(); ++i) {
    Image im = c.channels == 1 ? to_gray(images[size_t(i)]) : to_rgb(images[size_t(i)]);
    MMKIT_CHECK(im.channels == c.channels, "image ", i, " has ", im.channels,
                " channels after conversion, the model expects ", c.channels);
    if (im.width != S || im.height != S) im = resize_bilinear(im, int(S), int(S));
    pixels_to_chw(im.pixels.data(), int(S), int(S), int(c.channels), c.pixel_mean, c.pixel_std,
                  x.f32() + i * c.channels * S * S);
  }
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  Var logits = vit_forward(g, vit, g.constant(x));
  Var probs = ag::softmax(g, logits);
  const float* p = g.data(probs);
  const float* L = g.data(logits);
  for (int64_t i = 0; i < n; ++i) {
    Classification r;
    r.probs.assign(p + i * K, p + (i + 1) * K);
    r.logits.assign(L + i * K, L + (i + 1) * K);
    for (int64_t k = 1; k < K; ++k)
      if (r.probs[size_t(k)] > r.probs[size_t(r.label)]) r.label = k;
    r.probability = r.probs[size_t(r.label)];
    r.name = size_t(r.label) < c.class_names.size() ? c.class_names[size_t(r.label)]
                                                     : std::to_string(r.label);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<size_t> top_classes(const Classification& c, int k) {
  std::vector<size_t> order(c.probs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return c.probs[x] > c.probs[y]; });
  order.resize(std::min(order.size(), size_t(std::max(k, 0))));
  return order;
}

}  // namespace mmkit
