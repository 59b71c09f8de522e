// Pillow-exact image resizing: Image.resize(size, NEAREST | BILINEAR | BICUBIC)
// of Pillow 9.4, byte for byte (tests/test_preprocess.cpp checks it against
// fixtures made by tools/fixtures/gen_preprocess_fixture.py).
//
//   mmkit::Image small = mmkit::resize_pil(img, 224, 149, mmkit::Filter::bicubic);
//
// The algorithm (Pillow's libImaging/Resample.c, re-derived here): a separable
// convolution, horizontal pass first, then vertical. For an axis mapping
// `in` samples onto `out`, scale = in / out and the filter is stretched by
// fs = max(scale, 1) — so downscaling averages (antialiasing) and upscaling
// interpolates. Output sample i is centred at (i + 0.5) * scale and reads the
// input window [int(center - support + 0.5), int(center + support + 0.5)),
// clamped to the image, with support = filter_support * fs. The weights
// filter((j - center + 0.5) / fs) are normalised to sum 1 over the clamped
// window (so edges renormalise instead of replicating pixels), then turned
// into fixed point with 22 fractional bits (round half away from zero). Each
// pass accumulates in int32 from 2^21 (the rounding half), shifts right by 22
// and clips to [0, 255]: the intermediate image is 8-bit, like Pillow's.
//   bilinear: triangle, support 1.   bicubic: Keys' cubic with a = -0.5, support 2.
// A pass is skipped when its axis keeps its size (the result would be the
// identity anyway), and an unchanged size returns a copy.
// nearest: no filtering; output x reads input int((x + 0.5) * scale), with
// the position accumulated in double as Pillow's affine scaler does.
//
// Channels: 1 (L), 3 (RGB) and 4 (RGBA). For 4 channels (and 2, "LA") the last
// channel is alpha and, as Pillow does for modes RGBA/LA with a filtering
// resample, the colour is premultiplied first (c' = (c*a + 128 + ((c*a + 128) >> 8)) >> 8,
// i.e. round(c*a/255)), resized, then divided back (c = min(255, 255*c'/a) with
// truncation; untouched where a is 0 or 255). NEAREST resizes RGBA straight.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "mmkit/image/image.h"

namespace mmkit {

enum class Filter { nearest, bilinear, bicubic };

// "nearest" | "bilinear" | "bicubic" (the PIL names, case-sensitive).
const char* filter_name(Filter f);
Filter filter_from_name(const std::string& name);

// Resizes to w x h (both >= 1) exactly as PIL.Image.resize((w, h), filter)
// with the default box and no reducing_gap. Throws mmkit::Error on an invalid
// image, a channel count outside 1..4, or a non-positive target size.
Image resize_pil(const Image& img, int w, int h, Filter f);

// The window [x0, x1) x [y0, y1) of the bilinear/bicubic resize of an 8-bit [in_h, in_w, C] image
// to w x h, every channel filtered on its own (no alpha premultiplication), written to out with
// rows out_stride bytes apart. The same bytes as cutting that window out of resize_pil's result
// (for 1 or 3 channels), but only the window is computed — a resize followed by a center crop
// does a quarter less work — and nothing is allocated after the first call on a thread.
// Vectorised (resample_kernels.h).
void resize_region(const uint8_t* in, int in_w, int in_h, int C, int w, int h, Filter f, int x0, int x1, int y0,
                   int y1, uint8_t* out, size_t out_stride);

}  // namespace mmkit
