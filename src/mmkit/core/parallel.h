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

// Runs the calling thread's OpenMP regions (and oneDNN's GEMMs, which follow
// OpenMP's setting) on at most n threads until destruction; n <= 0 changes
// nothing. For work too small to be worth waking the pool, e.g. one decoding
// step of a caption (infer/caption_generate.cpp). OpenMP keeps this setting
// per thread, so other threads are unaffected.
class ScopedThreadLimit {
 public:
  explicit ScopedThreadLimit(int n);
  ~ScopedThreadLimit();
  ScopedThreadLimit(const ScopedThreadLimit&) = delete;
  ScopedThreadLimit& operator=(const ScopedThreadLimit&) = delete;

 private:
  int saved_;
};

// Programs call this first thing in main(). Unless the user chose an OpenMP
// wait policy (OMP_WAIT_POLICY / GOMP_SPINCOUNT), it picks one for the machine
// as it is at start (default_wait_policy_for):
//  - "spin" (GOMP_SPINCOUNT=300000, libgomp's own default spin-then-sleep, which
//    the process already runs with: no re-exec, the variable is set for child
//    processes) when no other task is runnable: pool threads waiting between the parallel
//    regions of one forward catch the next region without a futex wake-up
//    (batch-1 latency, docs/BENCHMARKS.md "Batch-1 latency and the wait policy");
//  - "passive" (OMP_WAIT_POLICY=passive) when other work is running, and always
//    for the long-running commands `serve`, `train`, `index`, `eval` and `data` (argv[1]) and
//    folder pipelines (`--images`: decoding threads run beside the pool): libgomp's
//    spinning turns a 43 ms training step into ~1 s whenever another process
//    shares the two vCPUs, while passive costs 15-40% on an idle machine. libgomp
//    reads its environment when loaded, so this re-executes the program once with
//    OMP_WAIT_POLICY=passive set.
// Sets MMKIT_KEEP_OMP_ENV=1 so it happens once.
void apply_default_wait_policy(int argc, char** argv);

// The two inputs of that choice, separately (tests, benchmarks): whether no other task is
// runnable in three samples of /proc/stat ~1 ms apart, and the policy ("spin" or "passive") for
// a command line given that.
bool machine_looks_idle();
const char* default_wait_policy_for(int argc, char** argv, bool idle);

}  // namespace mmkit
