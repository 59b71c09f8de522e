#include "mmkit/eval/caption_eval.h"

#include <algorithm>
#include <chrono>

#include "mmkit/autograd/functions.h"
#include "mmkit/image/to_tensor.h"
#include "mmkit/util/progress.h"

namespace mmkit {

void caption_input(const Captioner& m, const data::CaptionData& d, const int64_t* idx, int64_t n, float* out) {
  const VitConfig& v = m.cfg.vision;
  MMKIT_CHECK(d.size == v.image_size && d.channels == v.channels, "caption data images are ", d.size, "x", d.size,
              "x", d.channels, ", the model expects ", v.image_size, "x", v.image_size, "x", v.channels);
  const int64_t per = v.channels * v.image_size * v.image_size;
  for (int64_t i = 0; i < n; ++i)
    pixels_to_chw(d.image(idx[i]), int(d.size), int(d.size), int(d.channels), v.pixel_mean, v.pixel_std,
                  out + i * per);
}

CaptionEvalResult evaluate_captions(Captioner& m, const text::CaptionVocab& vocab, const data::CaptionData& d,
                                    const GenerateOptions& g, int64_t limit, bool progress, int batch) {
  auto t0 = std::chrono::steady_clock::now();
  const int64_t n = limit > 0 ? std::min(limit, d.n()) : d.n();
  const VitConfig& v = m.cfg.vision;
  CaptionEvalResult r;
  r.images = n;
  std::vector<Tokens> cands;
  std::vector<std::vector<Tokens>> refs;
  std::vector<std::vector<data::SceneObject>> objects;
  r.has_objects = n > 0;
  ProgressOptions po;
  po.unit = "img/s";
  if (!progress) po.mode = ProgressMode::off;
  Progress bar(g.beam > 1 ? "captioning (beam " + std::to_string(g.beam) + ")" : "captioning (greedy)", n, stderr,
               po);
  std::vector<int64_t> idx;
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    const int64_t b = std::min<int64_t>(batch, n - i0);
    idx.resize(size_t(b));
    for (int64_t i = 0; i < b; ++i) idx[size_t(i)] = i0 + i;
    Tensor x = Tensor::empty(Shape{b, v.channels, v.image_size, v.image_size});
    caption_input(m, d, idx.data(), b, x.f32());
    ImageMemory mem = encode_images(m, x);
    auto caps = generate(m, mem, g);
    for (int64_t i = 0; i < b; ++i) {
      const data::CaptionExample& ex = d.examples[size_t(i0 + i)];
      std::string text = vocab.decode(caps[size_t(i)].tokens);
      cands.push_back(metric_tokens(text));
      refs.emplace_back();
      for (auto& c : ex.captions) refs.back().push_back(metric_tokens(c));
      objects.push_back(ex.objects);
      r.has_objects &= !ex.objects.empty();
      r.captions.push_back(std::move(text));
    }
    bar.update(i0 + b);
  }
  bar.finish();
  r.bleu = corpus_bleu(cands, refs);
  r.cider_d = cider_d(cands, refs);
  if (r.has_objects) r.objects = object_f1(cands, objects);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CaptionBatch make_caption_batch(const std::vector<const std::vector<int32_t>*>& words, const CaptionDecoderConfig& c,
                                int64_t min_T) {
  CaptionBatch b;
  const int64_t B = int64_t(words.size());
  b.T = min_T;
  for (auto* w : words) b.T = std::max<int64_t>(b.T, int64_t(w->size()) + 1);
  b.T = std::min(b.T, c.max_len);
  b.ids = Tensor::empty(Shape{B, b.T}, DType::i32);
  b.targets = Tensor::empty(Shape{B * b.T}, DType::i32);
  int32_t* ids = b.ids.ptr<int32_t>();
  int32_t* tg = b.targets.ptr<int32_t>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& w = *words[size_t(i)];
    for (int64_t t = 0; t < b.T; ++t) {
      // position t holds the token before target t
      ids[i * b.T + t] = t == 0 ? c.bos_id : (t - 1 < int64_t(w.size()) ? w[size_t(t - 1)] : c.pad_id);
      tg[i * b.T + t] = t < int64_t(w.size()) ? w[size_t(t)] : (t == int64_t(w.size()) ? c.eos_id : -1);
      b.tokens += tg[i * b.T + t] >= 0;
    }
  }
  return b;
}

int64_t count_correct_words(const float* logits, const int32_t* targets, int64_t rows, int64_t V) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    const float* l = logits + r * V;
    n += int64_t(std::max_element(l, l + V) - l) == targets[r];
  }
  return n;
}


CaptionLossAcc teacher_forced_loss(Captioner& m, const data::CaptionData& d, const std::vector<std::vector<std::vector<int32_t>>>& words,
                  float smoothing) {
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  const VitConfig& v = m.cfg.vision;
  const int64_t V = m.cfg.decoder.vocab_size, bs = 100;
  double loss = 0;
  int64_t tokens = 0, correct = 0;
  std::vector<int64_t> idx;
  for (int64_t i0 = 0; i0 < d.n(); i0 += bs) {
    const int64_t b = std::min(bs, d.n() - i0);
    idx.resize(size_t(b));
    std::vector<const std::vector<int32_t>*> w;
    for (int64_t i = 0; i < b; ++i) {
      idx[size_t(i)] = i0 + i;
      w.push_back(&words[size_t(i0 + i)][0]);
    }
    CaptionBatch sb = make_caption_batch(w, m.cfg.decoder);
    g.reset();
    Tensor x = g.alloc(Shape{b, v.channels, v.image_size, v.image_size});
    caption_input(m, d, idx.data(), b, x.f32());
    Var logits = caption_decoder_forward(g, m.decoder, sb.ids, captioner_encode(g, m, g.constant(x)));
    Var flat = ag::reshape(g, logits, Shape{b * sb.T, V});
    loss += double(g.data(ag::cross_entropy(g, flat, sb.targets, smoothing))[0]) * double(sb.tokens);
    tokens += sb.tokens;
    correct += count_correct_words(g.data(flat), sb.targets.ptr<int32_t>(), b * sb.T, V);
  }
  return {tokens ? loss / double(tokens) : 0, tokens ? double(correct) / double(tokens) : 0};
}

}  // namespace mmkit
