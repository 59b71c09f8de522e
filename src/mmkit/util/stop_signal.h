// SIGINT/SIGTERM for long-running commands (training, serving): the signal
// is only recorded; the loop polls stop_signal() and stops cleanly (the
// training loop saves a checkpoint and returns, the server drains). While a
// scope lives, the signals are blocked on its thread and the OpenMP pool
// (stop_signal() takes them), so no handler runs inside a GEMM kernel; why:
// stop_signal.cpp.
//
//   mmkit::StopSignalScope signals;   // handlers installed, flag cleared
//   for (...) { ...; if (mmkit::stop_signal()) { save(); return; } }
#pragma once

namespace mmkit {

// Installs the handlers and blocks the signals on the calling thread and the
// OpenMP pool for its lifetime (restoring the previous handlers and masks
// after; a signal still pending then is recorded) and clears the recorded
// signal. Threads the calling thread starts meanwhile inherit the block.
class StopSignalScope {
 public:
  StopSignalScope();
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;

 private:
  struct Saved;
  Saved* saved_;
};

// The signal received since the last StopSignalScope was created, or 0.
// Takes a pending (blocked) SIGINT/SIGTERM while a scope lives.
int stop_signal();

}  // namespace mmkit
