#include "mmkit/util/stop_signal.h"

#include <atomic>
#include <csignal>

namespace mmkit {

namespace {
std::atomic<int> g_stop_signal{0};
void on_signal(int sig) { g_stop_signal = sig; }
}  // namespace

struct StopSignalScope::Saved {
  struct sigaction old_int {}, old_term {};
};

StopSignalScope::StopSignalScope() : saved_(new Saved) {
  g_stop_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->old_int);
  sigaction(SIGTERM, &sa, &saved_->old_term);
}

StopSignalScope::~StopSignalScope() {
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  delete saved_;
}

int stop_signal() { return g_stop_signal; }

}  // namespace mmkit
