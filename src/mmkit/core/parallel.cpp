#include "mmkit/core/parallel.h"

#include <omp.h>
#include <stdlib.h>

#include <cstdlib>
#include <xmmintrin.h>

#ifdef MMKIT_USE_OPENBLAS
#include <cblas.h>
#endif

// libgomp's default wait policy (spin ~300k iterations, then sleep on a
// futex) is pathological on this project's 2-vCPU VMs: the tiny-ViT training
// step takes ~1 s instead of ~43 ms (docs/BENCHMARKS.md, "OpenMP wait
// policy"). A longer spin fixes it while idle workers still go to sleep
// after a few milliseconds. libgomp reads its environment in its own
// constructor, so the default has to be set from .preinit_array, which runs
// before any shared library is initialised. A user's OMP_WAIT_POLICY or
// GOMP_SPINCOUNT always wins.
static void mmkit_default_omp_env(int, char**, char**) {
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    setenv("GOMP_SPINCOUNT", "3000000", 0);
}
__attribute__((section(".preinit_array"), used)) static void (*mmkit_preinit)(int, char**, char**) =
    mmkit_default_omp_env;

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

}  // namespace mmkit
