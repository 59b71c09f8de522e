// Row-wise L2 normalisation, as CLIP-style losses apply it to the towers'
// outputs (F.normalize(x, dim=-1) in open_clip): x [N, E] -> x / |x| per row.
// Shared by the fused contrastive and sigmoid losses, which keep the
// normalised rows and the norms for their backward.
#pragma once
#include <cstdint>

namespace mmkit::ops {

// out_i = x_i / |x_i| for the N rows of x [N, E]; norms_i = |x_i| (clamped
// to >= 1e-12, so a zero row gives a zero direction, not NaN).
void normalize_rows(const float* x, int64_t N, int64_t E, float* out, float* norms);

// dx_i += (dn_i - n_i (n_i . dn_i)) / |x_i|: the Jacobian of x / |x| applied
// to dn [N, E], given the normalised rows n [N, E] and the norms [N].
void normalize_rows_backward(const float* n, const float* norms, const float* dn, int64_t N, int64_t E, float* dx);

}  // namespace mmkit::ops
