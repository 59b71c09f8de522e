// Threading: OpenMP is the one thread pool. oneDNN and the OpenMP build of
// OpenBLAS use the same libgomp runtime, so BLAS calls and our kernels share
// threads; kernels never call BLAS from inside a parallel region unless they
// mean it to run single-threaded (nested parallelism stays disabled).
#pragma once
#include <cstdint>

namespace mmkit {

// Sets the thread count for OpenMP and the GEMM backend (n <= 0: all cores)
// and enables flush-to-zero on the pool threads.
void set_num_threads(int n);
int num_threads();

}  // namespace mmkit
