#include "mmkit/train/run_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit::train {

namespace {
std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }
}  // namespace

struct StopSignalScope::Saved {
  struct sigaction old_int {}, old_term {};
};

StopSignalScope::StopSignalScope() : saved_(new Saved) {
  g_signal = 0;
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

int StopSignalScope::stop_signal() { return g_signal; }

bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

void make_output_dir(const std::string& dir) {
  MMKIT_CHECK(!dir.empty(), "no output directory given (--out DIR)");
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if ((i == dir.size() || dir[i] == '/') && !cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      fail("cannot create output directory ", dir, ": ", std::strerror(errno), " (at ", cur, ")");
    if (i < dir.size()) cur += dir[i];
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail("output path ", dir, " is not a directory");
  std::string probe = dir + "/.mmkit_write_test";
  FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) fail("output directory ", dir, " is not writable: ", std::strerror(errno));
  std::fclose(f);
  ::unlink(probe.c_str());
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
}

}  // namespace mmkit::train
