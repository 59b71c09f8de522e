// The two passes of Pillow's fixed-point resampling (see resample.h for the
// algorithm), as kernels on raw 8-bit rows: a scalar version that is the
// reference, and AVX2 / AVX-512 versions chosen at run time that compute the
// same integers (int32 products and sums, same start value 2^21, same
// arithmetic shift and clip), so their bytes are identical by construction;
// tests/test_resample_simd.cpp checks it on random images of every shape.
//
//   Taps tx = make_taps(640, 298, Filter::bicubic);
//   resample_rows(src, 640 * 3, 3, rows, tx, 37, 261, dst, 224 * 3);  // columns 37..260 only
//
// Both kernels compute only a window of their output (columns x0..x1 of the
// horizontal pass, rows y0..y1 of the vertical one): each output sample is
// independent of the others, so a resize followed by a crop can skip the
// cropped-away samples and still give Pillow's bytes.
//
// Vectorisation (the Pillow-SIMD idea of keeping several channels and taps in
// one register, redone here with 22-bit weights so the results stay Pillow's;
// Pillow-SIMD itself uses narrower weights and differs from Pillow in the last
// bit): horizontal, one output pixel at a time, 4 taps x 4 channels (AVX-512)
// or 2 taps x 4 channels (AVX2) widened to int32 and multiplied by the
// pre-broadcast weights; vertical, 16 (8) bytes of a row widened to int32
// and multiplied by one broadcast weight per input row.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mmkit/image/resample.h"

namespace mmkit {

// Fixed-point taps for one axis: output sample i = sum_j in[first[i] + j] * w[i*ksize + j], j < count[i].
// first[i] and first[i] + count[i] are non-decreasing in i. Weights carry 22 fractional bits.
struct Taps {
  int in_size = 0, out_size = 0, ksize = 0;
  std::vector<int> first, count;  // [out]
  std::vector<int32_t> w;         // [out, ksize]
  // For the vector kernels: ksize rounded up to a multiple of 4 (zero weights past count),
  // each weight repeated 4 times (one per channel lane): [out, kpad, 4].
  int kpad = 0;
  std::vector<int32_t> w4;
};

// Taps of Pillow's ImagingResample for in_size -> out_size samples (bilinear or bicubic).
Taps make_taps(int in_size, int out_size, Filter f);

// The taps for (in, out, f), computed once per thread and kept (a small per-thread cache of the
// last few sizes), so resizing many images of a few sizes allocates nothing after the first.
const Taps& cached_taps(int in_size, int out_size, Filter f);

enum class ResampleIsa { scalar, avx2, avx512 };
const char* resample_isa_name(ResampleIsa isa);
// The best the CPU supports (AVX-512 needs F+BW+VL), unless lowered by set_resample_isa.
ResampleIsa resample_isa();
// For tests and benchmarks: use `isa` (clamped to what the CPU supports) from now on, process-wide.
void set_resample_isa(ResampleIsa isa);

// Horizontal pass: `rows` rows of C channels (1..4), row r at in + r * in_stride, each
// t.in_size pixels -> output columns x0..x1-1 of t.out_size, written to out + r * out_stride
// (column x0 first).
void resample_rows(const uint8_t* in, size_t in_stride, int C, int rows, const Taps& t, int x0, int x1,
                   uint8_t* out, size_t out_stride);

// Vertical pass: output rows y0..y1-1 of t.out_size, each `bytes` bytes wide; input row j
// (0 <= j < t.in_size) is at in + (j - row0) * in_stride (rows before row0 are never read:
// row0 <= t.first[y0]). Output row y goes to out + (y - y0) * out_stride.
void resample_cols(const uint8_t* in, size_t in_stride, int row0, const Taps& t, int y0, int y1, size_t bytes,
                   uint8_t* out, size_t out_stride);

// The same passes with the scalar reference code only (what the tests compare against).
void resample_rows_scalar(const uint8_t* in, size_t in_stride, int C, int rows, const Taps& t, int x0, int x1,
                          uint8_t* out, size_t out_stride);
void resample_cols_scalar(const uint8_t* in, size_t in_stride, int row0, const Taps& t, int y0, int y1,
                          size_t bytes, uint8_t* out, size_t out_stride);

}  // namespace mmkit
