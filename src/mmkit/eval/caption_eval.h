// Scoring a captioner on a caption data set: greedy or beam captions of its
// images against their references (BLEU, CIDEr-D, object F1 when the data
// lists the objects). The per-epoch evaluation of `mmkit train caption` and
// `mmkit eval caption`.
#pragma once
#include <string>
#include <vector>

#include "mmkit/data/caption_dataset.h"
#include "mmkit/eval/caption_metrics.h"
#include "mmkit/infer/caption_generate.h"
#include "mmkit/models/captioner.h"

namespace mmkit {

struct CaptionEvalResult {
  int64_t images = 0;
  BleuScore bleu;
  double cider_d = 0;
  bool has_objects = false;  // the data carries objects: object F1 is meaningful
  ObjectF1 objects;
  double seconds = 0;        // encoding + generation + decoding to text
  std::vector<std::string> captions;
};

// Normalised model input [n, C, S, S] for images idx[0..n) of `d` (already at
// the model's size and channels).
void caption_input(const Captioner& m, const data::CaptionData& d, const int64_t* idx, int64_t n, float* out);

// Captions the first `limit` (0: all) images of `d` and scores them against
// their references.
CaptionEvalResult evaluate_captions(Captioner& m, const text::CaptionVocab& vocab, const data::CaptionData& d,
                                    const GenerateOptions& g, int64_t limit = 0, bool progress = false,
                                    int batch = 100);

// A batch of teacher-forcing sequences: ids [B, T] = BOS w1 .. wn PAD..,
// targets [B*T] = w1 .. wn EOS -1.. (-1: ignored by the loss). Right padding
// needs no key-padding mask: under the causal mask no real token sees a pad.
// T is the longest caption + 1 (at least min_T: a data-parallel rank pads its
// rows as the whole batch is padded), at most max_len.
struct CaptionBatch {
  Tensor ids, targets;
  int64_t T = 0, tokens = 0;  // tokens: targets that count
};
CaptionBatch make_caption_batch(const std::vector<const std::vector<int32_t>*>& words, const CaptionDecoderConfig& c,
                                int64_t min_T = 0);

// Correct next-word predictions (logits [rows, V]) among the non-ignored targets.
int64_t count_correct_words(const float* logits, const int32_t* targets, int64_t rows, int64_t V);

struct CaptionLossAcc {
  double loss = 0, acc = 0;
};
// Teacher-forced loss (label smoothing `smoothing`) and next-word accuracy
// over each image's first reference; words[i][r] = reference r of image i.
CaptionLossAcc teacher_forced_loss(Captioner& m, const data::CaptionData& d,
                            const std::vector<std::vector<std::vector<int32_t>>>& words, float smoothing);

}  // namespace mmkit
