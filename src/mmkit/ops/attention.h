// Scaled dot-product attention over heads, reading q/k/v in place.
//
// Layout: token rows with a row stride, heads side by side inside a row, so
// a packed projection [B, T, 3*D] is read without a split/permute copy:
//   q(b, h, i, :) = q + (b*Tq + i) * ldq + h*dh     (likewise k, v with Tk)
//   out(b, i, h*dh + d)  contiguous [B, Tq, H*dh]
// softmax(q k^T * scale + mask) v with
//   causal:   key j is hidden from query i when j > i + (Tk - Tq)
//   key_pad:  [B, Tk] bytes, nonzero = padding (hidden from every query)
// A query row with every key hidden outputs zeros (PyTorch gives NaN).
//
// Decoding with a KV cache (infer/caption_generate.h) uses
// attention_forward_gather: batch element b reads its keys/values from its
// own base pointer, so a cache with spare capacity [B, Tcap, D], or image
// keys/values shared by the beams of one image, is read without a copy.
#pragma once
#include <cstdint>

namespace mmkit::ops {

struct AttentionDims {
  int64_t B, H, Tq, Tk, dh;
  int64_t ldq, ldk, ldv;  // row strides in floats
  float scale;            // usually 1/sqrt(dh)
  bool causal;
};

// probs: [B, H, Tq, Tk] softmax output kept for the backward, or null for
// inference (then only per-thread scratch of Tq*Tk floats is used).
void attention_forward(const AttentionDims& d, const float* q, const float* k, const float* v,
                       const uint8_t* key_pad, float* out, float* probs);

// Accumulates into dq, dk, dv (same layouts/strides as q, k, v; any may be null).
void attention_backward(const AttentionDims& d, const float* q, const float* k, const float* v,
                        const float* probs, const float* dout, float* dq, float* dk, float* dv);

// Inference only (no backward): k(b, h, j, :) = k_base[b] + j * ldk + h*dh,
// likewise v; q, out, probs and the masks as in attention_forward (no key
// padding). Computes exactly what attention_forward computes for the same
// keys and values (same kernel).
void attention_forward_gather(const AttentionDims& d, const float* q, const float* const* k_base,
                              const float* const* v_base, float* out, float* probs);

}  // namespace mmkit::ops
