#include "mmkit/eval/vit_eval.h"

#include <algorithm>

#include "mmkit/autograd/functions.h"
#include "mmkit/image/to_tensor.h"
#include "mmkit/util/progress.h"

namespace mmkit {

void images_to_input(const Vit& vit, const data::ImageSet& set, const int64_t* idx, int64_t n,
                     float* out) {
  const int64_t per = vit.cfg.channels * vit.cfg.image_size * vit.cfg.image_size;
  MMKIT_CHECK(set.rows == vit.cfg.image_size && set.cols == vit.cfg.image_size &&
                  set.channels == vit.cfg.channels,
              "dataset images are ", set.rows, "x", set.cols, "x", set.channels, ", the model expects ",
              vit.cfg.image_size, "x", vit.cfg.image_size, "x", vit.cfg.channels);
  for (int64_t i = 0; i < n; ++i)
    pixels_to_chw(set.image(idx[i]), set.rows, set.cols, set.channels, vit.cfg.pixel_mean,
                  vit.cfg.pixel_std, out + i * per);
}

VitEvalResult evaluate_vit(Vit& vit, const data::ImageSet& set, int batch, bool show_progress) {
  const int64_t K = vit.cfg.num_classes;
  VitEvalResult r;
  r.n = set.n;
  r.confusion.assign(size_t(K * K), 0);
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  std::vector<int64_t> idx;
  Tensor x = Tensor::empty(Shape{batch, vit.cfg.channels, vit.cfg.image_size, vit.cfg.image_size});
  Tensor y = Tensor::empty(Shape{batch}, DType::i32);
  Progress::Options po;
  po.unit = "img/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("eval", set.n, stderr, po);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t i0 = 0; i0 < set.n; i0 += batch) {
    int64_t n = std::min<int64_t>(batch, set.n - i0);
    idx.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      idx[size_t(i)] = i0 + i;
      int32_t lab = set.labels[size_t(i0 + i)];
      MMKIT_CHECK(lab >= 0 && lab < K, "label ", lab, " of image ", i0 + i, " outside the model's ",
                  K, " classes");
      y.ptr<int32_t>()[i] = lab;
    }
    g.reset();
    // The first n rows of the batch buffers (the last batch may be short).
    Tensor xb = Tensor::view(x.raw(), Shape{n, vit.cfg.channels, vit.cfg.image_size, vit.cfg.image_size}, DType::f32);
    Tensor yb = Tensor::view(y.raw(), Shape{n}, DType::i32);
    images_to_input(vit, set, idx.data(), n, xb.f32());
    Var logits = vit_forward(g, vit, g.constant(xb));
    Var loss = ag::cross_entropy(g, logits, yb, 0.f);
    loss_sum += double(g.data(loss)[0]) * n;
    const float* L = g.data(logits);
    for (int64_t i = 0; i < n; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (L[i * K + k] > L[i * K + best]) best = k;
      int32_t t = y.ptr<int32_t>()[i];
      correct += best == t;
      r.confusion[size_t(t * K + best)]++;
    }
    bar.update(i0 + n);
  }
  bar.finish();
  r.accuracy = set.n ? double(correct) / double(set.n) : 0;
  r.loss = set.n ? loss_sum / double(set.n) : 0;
  return r;
}

}  // namespace mmkit
