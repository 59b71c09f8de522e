#include "mmkit/core/parallel.h"

#include <omp.h>

#ifdef MMKIT_USE_OPENBLAS
#include <cblas.h>
#endif

namespace mmkit {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
#ifdef MMKIT_USE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace mmkit
