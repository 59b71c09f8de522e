// Contrastive training of CLIP (`mmkit train clip`): image and text towers,
// L2-normalised projections, learnable temperature, and one of two losses
// over the batch's similarity matrix: CLIP's symmetric cross-entropy
// (--loss contrastive, ag::clip_contrastive_loss) or SigLIP's pairwise
// sigmoid loss (--loss sigmoid, ag::sigmoid_loss), which adds a learned
// logit bias (Clip::logit_bias, saved as the model file's `logit_bias`).
//
// Data: "fashion-mnist" (the Debian package: images + captions generated from
// class names, synonyms and templates, data/fmnist_captions.h) or an
// image-caption file (.jsonl / .csv, data/image_text_dataset.h) whose images
// are decoded on worker threads while the previous batch trains.
//
// Tokenizer: --vocab (OpenAI merges / HF folder), else the one embedded in
// --init, else byte-level BPE merges learned from the training captions.
// Either way it is stored in the model file's metadata, so a trained model
// is one self-contained file. A SigLIP --init (a Hugging Face SigLIP / SigLIP 2
// folder) keeps its SentencePiece model (--vocab, else the one beside it), which
// the run folder gets a copy of, with the folder's other tokenizer and
// preprocessing files.
//
// A task on the shared training loop (train/train_loop.h). The checkpoint
// also holds the tokenizer; model.safetensors (weights + config + tokenizer)
// is in the layout --init came in: OpenAI/OpenCLIP names, or Hugging Face
// CLIPModel / SiglipModel names with a config.json beside it. Captions and augmentation
// depend on (seed, step, row), so resume is step-exact.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/models/clip.h"
#include "mmkit/train/train_options.h"

namespace mmkit::train {

struct ClipTrainOptions : TrainOptions {
  std::string data = "fashion-mnist";  // "fashion-mnist" / an IDX directory, or a .jsonl/.csv caption file
  std::string init;       // fine-tune from this CLIP (OpenAI/OpenCLIP or Hugging Face safetensors)
  std::string vocab;      // tokenizer files; see above
  int bpe_merges = 1000;  // merges to learn when no tokenizer is given
  ClipConfig model = fmnist_clip_config();  // ignored with --init (the checkpoint's config wins)
  std::string freeze;     // "" | "image" | "text": that tower is locked (LiT-style training)
  bool augment = true;    // Fashion-MNIST: shifts <= 1 px + flips; files: horizontal flips only if flip
  bool flip = false;      // caption files: random horizontal flips (off: captions may say left/right)
  int workers = 2;        // image decoding threads for caption files
  int64_t eval_images = 0;  // Fashion-MNIST: zero-shot on the first N test images per epoch (0: all)
  // "contrastive" (CLIP) or "sigmoid" (SigLIP: logit scale starts at log 10 and
  // a learned bias at -10, as open_clip initialises SigLIP; --init keeps the
  // source's scale and its bias when it has one). A SigLIP --init needs "sigmoid"
  // and a caption file.
  std::string loss = "contrastive";
  ClipTrainOptions() {
    epochs = 10;
    batch = 256;
    lr = 1e-3f;
    weight_decay = 0.1f;
  }
};

struct ClipEpochRecord {
  int epoch = 0;
  double train_loss = 0;
  double train_acc = 0;       // in-batch image->text top-1 (own caption first; Fashion-MNIST: a caption of its class)
  double zero_shot_acc = -1;  // Fashion-MNIST test, held-out templates (-1: not measured)
  double logit_scale = 0;     // exp(t) at the epoch's end
  double seconds = 0, pairs_per_s = 0;
  std::vector<double> losses; // every step's loss (resume tests compare curves)
};

// One optimisation step on a batch: contrastive loss, backward, gradient
// clipping (clip_grad <= 0: off), AdamW at `lr`, temperature clamped to
// [0, ln 100]. pixels [B, 3, R, R], ids I32 [B, T]; logits (optional) gets
// the [B, B] scaled similarities. Returns the loss (non-finite: no update).
// The gradients must be zero on entry, and are zero again on return: AdamW's
// constructor zeroes them and the step zeroes each one as it reads it.
float clip_train_step(Graph& g, Clip& clip, AdamW& opt, const Tensor& pixels, const Tensor& ids, float lr,
                      float clip_grad, Tensor* logits = nullptr);

std::vector<ClipEpochRecord> train_clip(const ClipTrainOptions& opt, std::FILE* log = stderr);

}  // namespace mmkit::train
