// A Linear layer prepared for inference: y[M, out] = epilogue(x[M, in] @ W[out, in]^T + b[out]).
//
// Weight kinds (how the weights are stored and computed):
//   f32   oneDNN matmul; W reordered once into the primitive's blocked layout
//   bf16  oneDNN bf16 matmul (AVX512-BF16), f32 accumulate; W packed once as bf16, x rounded to
//         bf16 per call into scratch
//   f16   W stays f16 (this CPU has no f16 GEMM): converted per call into a reused f32 scratch
//         [out, in] (one layer at a time, never the whole model), then the f32 matmul
//   int8  symmetric per-output-channel weights W = Wq[out, in] * scale[out] (s8), activations
//         quantised per row at each call (x ~= xq[m, :] * sx[m], symmetric s8, sx = max|x[m,:]|/127),
//         s8 x s8 -> s32 oneDNN matmul (VNNI), then y = acc * sx[m] * scale[n] + b[n] in one pass
// Epilogues fused into the GEMM's output pass: GELU (erf), QuickGELU, GELU (tanh form), or residual
// (y += result).
// The matmul primitive is created once per layer with a run-time row count M, so any batch size
// reuses it; no allocation per call except what oneDNN does internally. The first call reads the
// weights in place (a mapped file: nothing copied); from the second call on they are packed into
// oneDNN's blocked layout (f32, bf16, int8; f16 is widened per call instead), after which
// LinearSource::release drops the source's pages. Calls of fewer than 16 rows run padded to 16, the
// rows from which both layouts give the same bits, so a layer's first call and later ones agree bit
// for bit (see kMinRows in the .cpp). forward() is not for concurrent use.
//
// Without oneDNN (MMKIT_BLAS=openblas) the same arithmetic runs through ops::gemm and a plain s32
// loop (correct, not fast).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mmkit::infer {

enum class WeightKind { f32, f16, bf16, int8 };
const char* weight_kind_name(WeightKind k);

enum class Epilogue { none, gelu, quick_gelu, gelu_tanh, residual };

// Where a layer's weights are: `w` points to out*in values of `kind` (f16/bf16: uint16_t,
// int8: int8_t) in row-major [out, in]; `scale` [out] for int8; `bias` [out] f32 or null.
// The pointers must stay valid for the PackedLinear's life only for kinds that are not packed
// (f16) and for bias/scale (both are read at each call).
struct LinearSource {
  WeightKind kind = WeightKind::f32;
  const void* w = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  int64_t out = 0, in = 0;
  std::string name;  // for messages
  std::function<void()> release;  // optional: called once the weights are packed (source not needed in memory)
};

// Per-call scratch shared by all layers of a model (grows to the largest call, then reused).
struct LinearScratch {
  std::vector<int8_t> xq;      // int8: quantised activations [M, in]
  std::vector<float> xs;       // int8: per-row scales [M]
  std::vector<int32_t> acc;    // int8: s32 products [M, out]
  std::vector<uint16_t> xh;    // bf16: activations [M, in]
  std::vector<float> wf;       // f16: one layer's weights as f32 [out, in]
  std::vector<float> xp, yp;   // f32 / bf16 / f16 calls of fewer than 16 rows: padded x [16, in], y [16, out]
};

class PackedLinear {
 public:
  PackedLinear(const LinearSource& src, Epilogue ep);
  ~PackedLinear();
  PackedLinear(PackedLinear&&) noexcept;
  PackedLinear& operator=(PackedLinear&&) noexcept;

  // x [M, in] -> y [M, out] (residual: y += ...). x and y must not overlap.
  void forward(const float* x, int64_t M, float* y, LinearScratch& s) const;

  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  WeightKind kind() const { return kind_; }
  size_t packed_bytes() const;  // memory this layer holds beyond its source
  // Reorders the weights into oneDNN's blocked layout now (forward does it on its second call).
  void pack() const;

  struct Impl;  // oneDNN state (public only so helpers in the .cpp can name it)

 private:
  std::unique_ptr<Impl> impl_;
  WeightKind kind_ = WeightKind::f32;
  Epilogue ep_ = Epilogue::none;
  int64_t in_ = 0, out_ = 0;
  const void* w_ = nullptr;  // the source (f16: read per call)
  const float* scale_ = nullptr;
  const float* bias_ = nullptr;
};

// Symmetric per-row int8 quantisation: q[r, :] = round(x[r, :] / s[r]), s[r] = max|x[r, :]| / 127
// (rows of zeros get s = 0 and q = 0). Used for weights (rows = output channels) at quantisation
// time and for activations (rows = tokens) at each call.
void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int8_t* q, float* s);

}  // namespace mmkit::infer
