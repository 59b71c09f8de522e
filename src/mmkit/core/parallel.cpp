#include "mmkit/core/parallel.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
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

namespace {

// Runnable tasks on the machine right now other than the calling thread: /proc/stat's
// procs_running (instantaneous, unlike the load average, which lags by a minute) minus one.
// -1 when unreadable.
int other_runnable_tasks() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "procs_running %d", &n) == 1) break;
  std::fclose(f);
  return n < 0 ? -1 : n - 1;
}

}  // namespace

bool machine_looks_idle() {
  // Three samples ~1 ms apart: a busy process is runnable in all of them, a build's short
  // compiler starts often are; either way the machine is not ours alone.
  for (int i = 0; i < 3; ++i) {
    if (i) ::usleep(1000);
    if (other_runnable_tasks() != 0) return false;
  }
  return true;
}

const char* default_wait_policy_for(int argc, char** argv, bool idle) {
  // Long-running commands may see load arrive after they start, and folder pipelines run their
  // own decoding threads beside the pool (spinning pool threads would take the cores those
  // need): they keep passive waiting. Short ones spin only if nothing else wants the cores now.
  const char* command = argc > 1 ? argv[1] : nullptr;
  // `eval` and `data` belong here too: an evaluation runs for minutes (a test suite starts them two
  // at a time), and a data generator is not latency-bound.
  bool passive_kind = false;
  for (const char* c : {"serve", "train", "index", "eval", "data"})
    passive_kind = passive_kind || (command && std::strcmp(command, c) == 0);
  for (int i = 1; i < argc && !passive_kind; ++i)
    passive_kind = std::strcmp(argv[i], "--images") == 0 || std::strncmp(argv[i], "--images=", 9) == 0;
  return !passive_kind && idle ? "spin" : "passive";
}

void apply_default_wait_policy(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("MMKIT_KEEP_OMP_ENV"))
    return;
  const char* policy = default_wait_policy_for(argc, argv, machine_looks_idle());
  setenv("MMKIT_KEEP_OMP_ENV", "1", 0);  // children (and a re-executed us) keep what is decided here
  if (std::strcmp(policy, "spin") == 0) {
    // Spinning is what libgomp already runs with when neither variable is set (GOMP_SPINCOUNT
    // 300000, throttled to 100 when oversubscribed: libgomp's env.c), so this process needs no
    // new image; the variable is set for the child processes only. Skipping the re-exec saves a
    // second program start (dynamic loading, OpenMP start-up: 10-40 ms) for every short command.
    setenv("GOMP_SPINCOUNT", "300000", 0);
    return;
  }
  // libgomp read its environment when it was loaded, so passive waiting needs a fresh process
  // image: re-exec ourselves once with it set.
  setenv("OMP_WAIT_POLICY", "passive", 0);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with libgomp's default.
}

}  // namespace mmkit
