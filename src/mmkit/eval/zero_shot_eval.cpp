#include "mmkit/eval/zero_shot_eval.h"

#include <algorithm>

#include "mmkit/infer/clip_runner.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/util/progress.h"

namespace mmkit {

ZeroShotEval zero_shot_accuracy(Clip& m, const text::ClipTokenizer& tok, const float* pixels,
                                const std::vector<int32_t>& targets, const std::vector<std::string>& labels,
                                const std::vector<std::string>& templates, bool show_progress) {
  const int64_t N = int64_t(targets.size()), K = int64_t(labels.size()), E = m.cfg.embed_dim;
  const int64_t R = m.cfg.image_resolution, per = 3 * R * R;
  Tensor cls = clip_class_embeddings(m, tok, labels, templates);  // [K, E]
  ZeroShotEval r;
  r.n = N;
  r.confusion.assign(size_t(K * K), 0);
  Progress::Options po;
  po.unit = "img/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("zero-shot", N, stderr, po);
  const int64_t chunk = 500;
  std::vector<float> S(size_t(chunk * K));
  int64_t top1 = 0, top5 = 0;
  Arena arena;  // one for all chunks (a new one per chunk page-faults its memory in again)
  for (int64_t i0 = 0; i0 < N; i0 += chunk) {
    int64_t n = std::min(chunk, N - i0);
    Tensor img = clip_embed_pixels(m, pixels + i0 * per, n, true, 250, &arena);
    ops::gemm(false, true, n, K, E, 1.f, img.f32(), E, cls.f32(), E, 0.f, S.data(), K);
    for (int64_t i = 0; i < n; ++i) {
      const float* s = S.data() + i * K;
      int32_t t = targets[size_t(i0 + i)];
      MMKIT_CHECK(t >= 0 && t < K, "label ", t, " of image ", i0 + i, " outside the ", K, " classes");
      int64_t best = std::max_element(s, s + K) - s, above = 0;
      for (int64_t k = 0; k < K; ++k) above += s[k] > s[t];
      top1 += best == t;
      top5 += above < 5;
      r.confusion[size_t(t * K + best)]++;
    }
    bar.update(i0 + n);
  }
  bar.finish();
  r.top1 = N ? double(top1) / double(N) : 0;
  r.top5 = N ? double(top5) / double(N) : 0;
  return r;
}

}  // namespace mmkit
