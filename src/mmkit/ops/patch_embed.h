// Patch embedding = Conv2d with kernel = stride = p, done as im2col + GEMM.
// Shapes: images [B, C, H, W] (NCHW, as PyTorch), P = (H/p) * (W/p) patches in
// row-major patch order, cols [B*P, C*p*p] with (c, ky, kx) ordering so that
// the conv weight [D, C, p, p] is directly the GEMM's [D, C*p*p] matrix.
#pragma once
#include <cstdint>

namespace mmkit::ops {

void patchify(const float* img, float* cols, int64_t B, int64_t C, int64_t H, int64_t W,
              int64_t p);
// Inverse scatter, accumulating: dimg += col2im(dcols).
void unpatchify_accumulate(const float* dcols, float* dimg, int64_t B, int64_t C, int64_t H,
                           int64_t W, int64_t p);

}  // namespace mmkit::ops
