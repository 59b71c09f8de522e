// Contrastive training of CLIP (`mmkit train clip`): image and text towers,
// L2-normalised projections, learnable temperature, symmetric cross-entropy
// over the batch's similarity matrix (ag::clip_contrastive_loss).
//
// Data: "fashion-mnist" (the Debian package: images + captions generated from
// class names, synonyms and templates, data/fmnist_captions.h) or an
// image-caption file (.jsonl / .csv, data/image_text_dataset.h) whose images
// are decoded on worker threads while the previous batch trains.
//
// Tokenizer: --vocab (OpenAI merges / HF folder), else the one embedded in
// --init, else byte-level BPE merges learned from the training captions.
// Either way it is stored in the model file's metadata, so a trained model
// is one self-contained file.
//
// OUT layout (as train vit): checkpoint.safetensors (weights + AdamW moments
// + config + train_state + tokenizer), model.safetensors (weights + config +
// tokenizer; in the layout --init came in: OpenAI/OpenCLIP names, or Hugging
// Face CLIPModel names with a config.json beside it), training_curves.png,
// history.json. Resume is step-exact: shuffling depends on (seed, epoch),
// captions and augmentation on (seed, step, row).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/data/fashion_mnist.h"
#include "mmkit/models/clip.h"

namespace mmkit::train {

// A small CLIP for 28x28 Fashion-MNIST (both towers 4+3 layers of width 128).
ClipConfig fmnist_clip_config();

struct ClipTrainOptions {
  std::string data = "fashion-mnist";  // "fashion-mnist" / an IDX directory, or a .jsonl/.csv caption file
  std::string out_dir;
  std::string init;       // fine-tune from this CLIP (OpenAI/OpenCLIP or Hugging Face safetensors)
  std::string vocab;      // tokenizer files; see above
  int bpe_merges = 1000;  // merges to learn when no tokenizer is given
  ClipConfig model = fmnist_clip_config();  // ignored with --init (the checkpoint's config wins)
  std::string freeze;     // "" | "image" | "text": that tower is locked (LiT-style training)
  int epochs = 10;
  int batch = 256;
  float lr = 1e-3f, min_lr = 1e-5f, weight_decay = 0.1f, clip_grad = 1.0f;
  int64_t warmup_steps = -1;  // < 0: one epoch
  bool augment = true;        // Fashion-MNIST: shifts <= 1 px + flips; files: horizontal flips only if flip
  bool flip = false;          // caption files: random horizontal flips (off: captions may say left/right)
  uint64_t seed = 0;
  int threads = 0;
  int workers = 2;            // image decoding threads for caption files
  int64_t checkpoint_every = 200;
  bool resume = false;
  int64_t limit_train = 0, limit_test = 0, max_steps = 0;
  int64_t eval_images = 0;    // Fashion-MNIST: zero-shot on the first N test images per epoch (0: all)
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

// Fashion-MNIST images [i0, i0+n) as CLIP input [n, 3, 28, 28]: gray
// replicated to RGB and normalised with CLIP's mean/std, exactly what the
// "clip" preprocessing does to the same image saved as a 28x28 PNG.
void fmnist_to_clip_pixels(const data::ImageSet& set, const int64_t* idx, int64_t n, float* out);

}  // namespace mmkit::train
