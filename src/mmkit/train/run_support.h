// Plumbing shared by training loops: stop on SIGINT/SIGTERM (the loop polls
// stop_signal() and saves a checkpoint), output directories checked before
// the first step, atomic text files. (train/vit_trainer.cpp predates this
// file and keeps its own copy.)
#pragma once
#include <string>

namespace mmkit::train {

// Installs SIGINT/SIGTERM handlers that only record the signal, for the
// scope's lifetime; restores the previous handlers afterwards.
class StopSignalScope {
 public:
  StopSignalScope();
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;
  static int stop_signal();  // the signal received in the current (or last) scope, or 0
 private:
  struct Saved;
  Saved* saved_;
};

// mkdir -p, then a write probe, so a bad --out fails before training starts.
void make_output_dir(const std::string& dir);
bool path_exists(const std::string& p);
// Writes to "<path>.tmp.<pid>", fsyncs, renames.
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace mmkit::train
