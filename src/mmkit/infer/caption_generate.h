// Caption generation for models/captioner.h: an inference-only decoder over
// the trained weights (ops/ kernels, no autograd tape) with a KV cache, and
// greedy and beam search on top of it.
//
//   mmkit::ImageMemory mem = mmkit::encode_images(model, pixels);   // pixels [N, C, H, W], normalised
//   mmkit::GenerateOptions o;  o.beam = 5;
//   auto caps = mmkit::generate(model, mem, o);                      // one per image
//   vocab.decode(caps[0].tokens);
//
// KV cache: for every layer, the self-attention keys/values of the tokens
// fed so far ([rows, max_len, D], one row per sequence) and the image's
// cross-attention keys/values ([M, D] per image), computed once per image by
// encode_images and shared by all beams of that image. A step feeds one token
// per row: O(D^2 + t D) per layer instead of re-running the prefix.
// use_cache = false is the naive loop kept as the reference and the
// benchmark's baseline: every step re-runs the whole prefix through the same
// kernels, including the cross-attention key/value projections of the image.
//
// Beam search (width K): each step expands every alive beam by every token,
// keeps the 2K best continuations by summed log-probability, moves those
// ending in EOS that rank within the first K to the finished list, and keeps
// the best K others alive. Finished hypotheses are ranked by the length
// penalty of Wu et al. 2016 (GNMT), s(Y) = log P(Y) / lp(Y),
// lp(Y) = ((5 + |Y|) / 6)^alpha, |Y| = generated tokens including EOS
// (alpha = 0: raw log-probability; no coverage penalty). An image is done
// when K hypotheses are finished and no alive beam can still beat the worst
// of them (log P only falls as a beam grows, so log P / lp(max_tokens) bounds
// its final score), or at max_tokens. Ties break towards lower beam index, then lower token id.
// Shape letters: N images, R rows (sequences), M memory tokens, D width, V vocabulary, L max length.
#pragma once
#include <cstdint>
#include <vector>

#include "mmkit/models/captioner.h"

namespace mmkit {

struct GenerateOptions {
  int beam = 1;                 // 1 = greedy
  float length_penalty = 0.6f;  // GNMT alpha, beam search only
  int64_t max_tokens = 0;       // generated tokens incl. EOS; <= 0: the model's max_len
  bool use_cache = true;        // false: naive loop (re-run the prefix every step)
  bool stop_at_eos = true;      // false: EOS is an ordinary token (benchmarks generate exactly max_tokens)
  bool attention = false;       // keep cross-attention maps per generated token
};

struct GeneratedCaption {
  std::vector<int32_t> tokens;  // generated words, without BOS/EOS
  bool finished = false;        // ended with EOS (else stopped at max_tokens)
  double log_prob = 0;          // sum of log-probabilities of the generated tokens (EOS included)
  double score = 0;             // beam: log_prob / lp(length); greedy: log_prob
  // [steps, M]: cross-attention of the last decoder layer (mean over heads)
  // for each generated token (EOS included), when GenerateOptions::attention.
  std::vector<float> attention;
  int64_t memory_tokens = 0;    // M
};

// Encoder output and every layer's cross-attention keys and values, per image.
struct ImageMemory {
  int64_t n = 0, M = 0, D = 0;
  Tensor memory;                 // [N, M, D]
  std::vector<Tensor> cross_k;   // per layer [N, M, D]
  std::vector<Tensor> cross_v;   // per layer [N, M, D]
};

// pixels [N, C, H, W], normalised as the model expects.
ImageMemory encode_images(Captioner& m, const Tensor& pixels);
// Cross-attention keys/values of every layer for `memory` [N, M, D] (what
// encode_images adds to the encoder output).
void project_cross_kv(const CaptionDecoder& d, ImageMemory& mem);

std::vector<GeneratedCaption> generate(const Captioner& m, const ImageMemory& mem, const GenerateOptions& o);
// What generate() checks first (beam 1..256, finite length penalty >= 0,
// max_tokens <= the model's max_len): throws mmkit::Error naming the value.
void check_generate_options(const Captioner& m, const GenerateOptions& o);

// The decoding state of R sequences (rows), each tied to an image of `mem`.
// Every row has fed the same number of tokens (position()).
class DecodeSession {
 public:
  // capacity: most rows ever alive; use_cache as GenerateOptions.
  DecodeSession(const CaptionDecoder& d, const ImageMemory& mem, int64_t capacity, bool use_cache);
  // Starts rows (at position 0) for images row_image[r].
  void start(const std::vector<int64_t>& row_image);
  // Feeds one token per row at position(); logits [R, V] for the next token;
  // attn (may be null) [R, M], last layer's cross-attention, mean over heads.
  void step(const int32_t* tokens, float* logits, float* attn);
  // Row r continues old row src[r] (rows may repeat or be dropped).
  void reorder(const std::vector<int64_t>& src);
  int64_t rows() const { return int64_t(row_image_.size()); }
  int64_t position() const { return pos_; }

 private:
  void forward(int64_t Tq, int64_t past, const int32_t* tokens, float* logits, float* attn);
  void layer(size_t l, int64_t Tq, int64_t past, float* x, bool want_probs);

  const CaptionDecoder& d_;
  const ImageMemory& mem_;
  int64_t cap_, L_, D_;
  bool use_cache_;
  int64_t pos_ = 0;
  std::vector<int64_t> row_image_;
  std::vector<std::vector<int32_t>> history_;          // uncached: every row's tokens so far
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [cap, L, D]
  std::vector<float> k_spare_, v_spare_;               // reorder target, swapped in
  std::vector<float> cross_k_tmp_, cross_v_tmp_;       // uncached: [R, M, D] recomputed per layer
  std::vector<float> x_, n_buf_, h_, qkv_, ctx_, ff_, ffa_, mean_, rstd_, probs_, last_;
  std::vector<const float*> kb_, vb_;
};

}  // namespace mmkit
