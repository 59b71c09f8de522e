// SIGINT/SIGTERM for long-running commands (training, serving): the handler
// only records the signal; the loop polls stop_signal() and stops cleanly
// (the training loop saves a checkpoint and returns, the server drains).
//
//   mmkit::StopSignalScope signals;   // handlers installed, flag cleared
//   for (...) { ...; if (mmkit::stop_signal()) { save(); return; } }
#pragma once

namespace mmkit {

// Installs the handlers for its lifetime (restoring the previous ones after)
// and clears the recorded signal.
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
int stop_signal();

}  // namespace mmkit
