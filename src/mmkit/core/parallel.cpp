#include "mmkit/core/parallel.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <xmmintrin.h>

#ifdef MMKIT_USE_OPENBLAS
#include <cblas.h>
#endif

namespace mmkit {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  // Flush-to-zero and denormals-are-zero on every pool thread (MXCSR is per
  // thread; libgomp keeps its threads alive): tiny gradients and activations
  // would otherwise make arithmetic ~100x slower without changing results
  // meaningfully.
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | 0x8040);
#ifdef MMKIT_USE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

int num_threads() { return omp_get_max_threads(); }

ScopedThreadLimit::ScopedThreadLimit(int n) : saved_(omp_get_max_threads()) {
  if (n > 0 && n < saved_) omp_set_num_threads(n);
}

ScopedThreadLimit::~ScopedThreadLimit() { omp_set_num_threads(saved_); }

void apply_default_wait_policy(int argc, char** argv) {
  (void)argc;
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("MMKIT_KEEP_OMP_ENV"))
    return;
  // libgomp read its environment when it was loaded, so the new policy
  // needs a fresh process image: re-exec ourselves once with it set.
  setenv("OMP_WAIT_POLICY", "passive", 0);
  setenv("MMKIT_KEEP_OMP_ENV", "1", 0);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with libgomp's default.
}

}  // namespace mmkit
