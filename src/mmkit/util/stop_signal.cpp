#include "mmkit/util/stop_signal.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <csignal>
#include <ctime>

namespace mmkit {

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_scopes{0};  // live StopSignalScopes: only then is a pending signal ours to take
void on_signal(int sig) { g_stop_signal = sig; }

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}

// Each OpenMP pool thread's mask from before the scope blocked SIGINT/SIGTERM on it.
thread_local sigset_t t_pool_mask;
thread_local bool t_pool_blocked = false;

// A process-directed SIGINT/SIGTERM that every compute thread blocks stays pending; take it.
int take_pending() {
  const sigset_t s = stop_set();
  const timespec zero{0, 0};
  const int sig = sigtimedwait(&s, nullptr, &zero);
  return sig > 0 ? sig : 0;
}
}  // namespace

// Why the signals are blocked rather than only handled: oneDNN's JIT sgemm kernels (libdnnl 2.x,
// fixed upstream in oneDNN PR #4855, issue #4845) point %rsp into a heap workspace while they run.
// A handler entered on a thread inside such a kernel has its signal frame written onto the heap,
// over malloc's chunk headers: glibc later aborts with "corrupted size vs. prev_size" or
// "free(): invalid pointer" (how Ctrl-C during `mmkit train vqa` crashed). However small the
// handler, the frame is the damage, so no thread that runs GEMMs may take the signal: the scope
// blocks SIGINT/SIGTERM on its own thread and on the OpenMP pool (threads started later by this
// thread, e.g. a bigger pool or serve's workers, inherit the mask), and stop_signal() takes the
// pending signal with sigtimedwait. The handler stays for threads the scope does not know
// (MPI's, a host program's), which run no GEMM kernels.
struct StopSignalScope::Saved {
  struct sigaction old_int {}, old_term {};
  sigset_t old_mask;
};

StopSignalScope::StopSignalScope() : saved_(new Saved) {
  g_stop_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->old_int);
  sigaction(SIGTERM, &sa, &saved_->old_term);
  const sigset_t s = stop_set();
  pthread_sigmask(SIG_BLOCK, &s, &saved_->old_mask);
#pragma omp parallel
  if (!t_pool_blocked) {
    pthread_sigmask(SIG_BLOCK, &s, &t_pool_mask);
    t_pool_blocked = true;
  }
  ++g_scopes;
}

StopSignalScope::~StopSignalScope() {
  // A signal still pending is recorded (as the handler would have), not delivered to the old
  // disposition once unblocked.
  stop_signal();
  if (--g_scopes == 0) {  // an enclosing scope still needs the pool blocked
#pragma omp parallel
    if (t_pool_blocked) {
      pthread_sigmask(SIG_SETMASK, &t_pool_mask, nullptr);
      t_pool_blocked = false;
    }
  }
  pthread_sigmask(SIG_SETMASK, &saved_->old_mask, nullptr);  // the handler is still ours here
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  delete saved_;
}

int stop_signal() {
  if (int sig = g_stop_signal.load()) return sig;
  if (g_scopes.load() > 0)
    if (int sig = take_pending()) {
      int none = 0;
      g_stop_signal.compare_exchange_strong(none, sig);
      return g_stop_signal.load();
    }
  return 0;
}

}  // namespace mmkit
