#include "mmkit/ops/l2_normalize.h"

#include <algorithm>
#include <cmath>

namespace mmkit::ops {

void normalize_rows(const float* x, int64_t N, int64_t E, float* out, float* norms) {
  for (int64_t i = 0; i < N; ++i) {
    const float* r = x + i * E;
    double ss = 0;
    for (int64_t e = 0; e < E; ++e) ss += double(r[e]) * r[e];
    float n = float(std::max(std::sqrt(ss), 1e-12));
    norms[i] = n;
    for (int64_t e = 0; e < E; ++e) out[i * E + e] = r[e] / n;
  }
}

void normalize_rows_backward(const float* n, const float* norms, const float* dn, int64_t N, int64_t E, float* dx) {
  for (int64_t i = 0; i < N; ++i) {
    const float* ni = n + i * E;
    const float* gi = dn + i * E;
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += double(ni[e]) * gi[e];
    const float inv = 1.f / norms[i], d = float(dot);
    for (int64_t e = 0; e < E; ++e) dx[i * E + e] += (gi[e] - ni[e] * d) * inv;
  }
}

}  // namespace mmkit::ops
