// Cheap augmentation for small grayscale images (Fashion-MNIST-sized), the
// usual "pad-and-random-crop + horizontal flip" recipe done without padding
// buffers: a random shift of up to `pad` pixels per axis, zero-filled.
#pragma once
#include <cstdint>

namespace mmkit::data {

// src, dst: h*w bytes, row-major, must not overlap. The shift (dx, dy) is
// uniform in [-pad, pad]^2 and, when hflip, the image is mirrored with
// probability 1/2 — all drawn from Rng(rng_state), so passing e.g.
// mix64(seed ^ epoch) ^ sample_index makes augmentation reproducible.
// pad = 0 and hflip = false copies src.
void augment_random_crop_flip(const uint8_t* src, int h, int w, int pad, bool hflip, uint64_t rng_state,
                              uint8_t* dst);

// The deterministic core: dst(y, x) = src(y + dy, x' + dx) with x' = w-1-x
// when flip, else x; 0 outside src.
void shift_flip(const uint8_t* src, int h, int w, int dx, int dy, bool flip, uint8_t* dst);

}  // namespace mmkit::data
