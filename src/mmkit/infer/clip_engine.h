// CLIP inference without the autograd graph: both towers run on preallocated buffers that are
// reused layer after layer (a few [B*T, 4W] arrays instead of every activation of the pass), with
// each Linear prepared once as an infer::PackedLinear (f32 pre-packed, bf16, f16 or int8 weights,
// bias and GELU/QuickGELU/residual fused into the GEMM's output).
//
//   auto e = mmkit::infer::ClipEngine::open("clip.safetensors");   // f32, or `mmkit quantize` output
//   std::vector<float> emb(B * e->config().embed_dim);
//   e->encode_image(pixels, B, emb.data());                        // pixels [B, 3, R, R]
//   e->encode_text(ids, B, T, emb.data());                         // ids I32 [B, T]
//
// Weight formats (metadata "mmkit.quantization" of the file, see infer/quantize.h):
//   absent  F32/F16/BF16 checkpoints in OpenAI or Hugging Face layout (as load_clip reads them).
//           F32 OpenAI-layout files and Hugging Face CLIP/SigLIP files are read straight from the
//           mapping: nothing is copied at open; when a tower is first used, the Hugging Face q/k/v of
//           each block are joined into one in_proj (and CLIP's nn.Linear projections transposed), in
//           copies of those tensors only, and F16/BF16 tensors are widened to f32 one at a time.
//           F16/BF16 OpenAI-layout files go through load_clip (widened whole).
//   int8    block Linears I8 [out, in] + "<weight>_scale" F32 [out]; everything else F32
//   f16 / bf16  every tensor F16 / BF16: Linears computed from them (bf16 natively, f16 converted
//           per layer into one reused buffer); small tensors (LayerNorms, biases, embeddings
//           other than the token table) widened to f32 at load
// A tower is prepared on its first use (image-only work never touches the text tower; its tensors
// are checked finite then, one by one). Its first call reads the weights in place from the mapping
// (a one-shot `mmkit embed` copies no weights); the second packs them (PackedLinear), and the mapped
// pages of each packed tensor are then released (SafetensorsFile::release_pages), so resident memory
// stays near one copy of the weights. Both give the same bits (PackedLinear pads calls of fewer than
// 16 rows, below which oneDNN's result depends on the layout), so a model's first call and its later
// ones agree bit for bit.
// One engine runs one call at a time (its buffers are shared); use one per thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mmkit/infer/packed_linear.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"

namespace mmkit::infer {

class ClipEngine {
 public:
  static std::unique_ptr<ClipEngine> open(const std::string& path);
  ~ClipEngine();

  const ClipConfig& config() const { return cfg_; }
  // "f32" (also for F16/BF16 checkpoints without quantisation metadata: widened at load), "int8",
  // "f16" or "bf16".
  const std::string& weight_format() const { return format_; }
  float logit_scale() const { return logit_scale_; }
  // Models with a logit bias (SigLIP, or a CLIP trained with the sigmoid loss: the file's
  // optional `logit_bias`) give per-label sigmoid probabilities; 0 and false otherwise.
  bool has_logit_bias() const { return has_logit_bias_; }
  float logit_bias() const { return logit_bias_; }
  const io::SafetensorsFile& file() const { return *file_; }
  const std::string& path() const { return path_; }

  // images [B, 3, R, R] preprocessed -> out [B, E] (not normalised)
  void encode_image(const float* images, int64_t B, float* out);
  // ids [B, T] (T <= context_length, pooled at argmax = end of text) -> out [B, E]. Runs only the
  // positions up to the batch's last end-of-text token (the causal mask makes the rest irrelevant).
  // SigLIP (config().siglip()): no causal mask, every position runs, pooled at T - 1; the image
  // tower runs every block on every token and pools with the attention head (models/clip.h).
  void encode_text(const int32_t* ids, int64_t B, int64_t T, float* out);

  // Bytes held in the activation buffers (grown to the largest call so far) and in packed weights.
  size_t workspace_bytes() const;
  size_t packed_weight_bytes() const;

 private:
  ClipEngine() = default;
  struct Tower;
  struct Tensors;
  void prepare_vision();
  void prepare_text();
  void run_blocks(Tower& t, int64_t B, int64_t T, bool causal, size_t n_blocks);
  float* run_last_block_cls(Tower& t, int64_t B, int64_t T);
  void prepare_siglip_head(Tower& v);
  void run_siglip_head(Tower& t, int64_t B, int64_t T, float* out);

  ClipConfig cfg_;
  std::string format_, path_;
  float logit_scale_ = 0.f;
  bool has_logit_bias_ = false;
  float logit_bias_ = 0.f;
  std::shared_ptr<io::SafetensorsFile> file_;
  std::unique_ptr<Clip> clip_;  // f32 path for checkpoints that need remapping/widening
  std::unique_ptr<Tensors> src_;
  std::unique_ptr<Tower> vision_, text_;
  LinearScratch scratch_;
  std::vector<float> x_, h_, qkv_, f_, stats_, pooled_, cls_;
  std::vector<int64_t> eot_;
};

}  // namespace mmkit::infer
