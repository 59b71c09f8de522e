// SIGINT/SIGTERM during a training run: the handler only records the signal;
// the training loop polls stop_signal(), saves a checkpoint and returns.
//
//   mmkit::train::StopSignalScope signals;   // handlers installed, flag cleared
//   for (...) { ...; if (mmkit::train::stop_signal()) { save(); return; } }
#pragma once

namespace mmkit::train {

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

}  // namespace mmkit::train
