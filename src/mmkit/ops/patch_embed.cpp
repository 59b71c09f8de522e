#include "mmkit/ops/patch_embed.h"

namespace mmkit::ops {

void patchify(const float* img, float* cols, int64_t B, int64_t C, int64_t H, int64_t W,
              int64_t p) {
  int64_t gh = H / p, gw = W / p, K = C * p * p;
#pragma omp parallel for collapse(2) if (B * C * H * W > (1 << 15))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px) {
        float* row = cols + ((b * gh + py) * gw + px) * K;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < p; ++ky) {
            const float* src = img + ((b * C + c) * H + py * p + ky) * W + px * p;
            float* dst = row + (c * p + ky) * p;
            for (int64_t kx = 0; kx < p; ++kx) dst[kx] = src[kx];
          }
      }
}

void unpatchify_accumulate(const float* dcols, float* dimg, int64_t B, int64_t C, int64_t H,
                           int64_t W, int64_t p) {
  int64_t gh = H / p, gw = W / p, K = C * p * p;
#pragma omp parallel for if (B * C * H * W > (1 << 15))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px) {
        const float* row = dcols + ((b * gh + py) * gw + px) * K;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < p; ++ky) {
            float* dst = dimg + ((b * C + c) * H + py * p + ky) * W + px * p;
            const float* src = row + (c * p + ky) * p;
            for (int64_t kx = 0; kx < p; ++kx) dst[kx] += src[kx];
          }
      }
}

}  // namespace mmkit::ops
