// Child processes for the benchmark programs: fork/exec without a shell, stdout captured, the
// child's own wall time and peak RSS; JSON lines out of its output; and the small things every
// such program needs (a file test, this program's path, main's error handling). Shared by
// clip_bench, embed_bench, image_bench and latency_bench.
#pragma once
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace mmkit::bench {

// `env` entries are set in the child; an empty value unsets the variable.
using Env = std::vector<std::pair<std::string, std::string>>;

struct ChildResult {
  bool ok = false;  // exited with status 0
  std::string out;  // its stdout
  double wall_s = 0;
  double peak_rss_mb = 0;
};

inline ChildResult run_child(const std::vector<std::string>& argv, const Env& env = {}) {
  ChildResult r;
  // Everything is built before fork: between fork and exec only async-signal-safe calls.
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e, key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (auto& m : env) replaced = replaced || m.first == key;
    if (!replaced) envs.push_back(kv);
  }
  for (auto& m : env)
    if (!m.second.empty()) envs.push_back(m.first + "=" + m.second);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string exec_error = "bench: cannot execute " + argv[0] + "\n";
  int fd[2];
  if (::pipe(fd) != 0) return r;
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd[0]);
    ::close(fd[1]);
    return r;
  }
  if (pid == 0) {
    ::dup2(fd[1], 1);
    ::close(fd[0]);
    ::close(fd[1]);
    ::execve(args[0], args.data(), envp.data());
    ssize_t ignored = ::write(2, exec_error.data(), exec_error.size());
    (void)ignored;
    ::_exit(127);
  }
  ::close(fd[1]);
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) r.out.append(buf, size_t(n));
  ::close(fd[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.peak_rss_mb = double(ru.ru_maxrss) / 1024.0;  // kB on Linux
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

inline std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream s(out);
  for (std::string line; std::getline(s, line);) {
    if (line.empty() || line[0] != '{') continue;
    try {
      v.push_back(nlohmann::json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return v;
}

inline std::string load_average() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char a[32] = "?", b[32] = "?", c[32] = "?";
  if (std::fscanf(f, "%31s %31s %31s", a, b, c) != 3) a[0] = '?';
  std::fclose(f);
  return std::string("load average ") + a + ", " + b + ", " + c;
}

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// This program's path (/proc/self/exe), and its folder: the build folder, where the other
// programs (mmkit, the benchmarks) are.
inline std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, size_t(n));
}
inline std::string self_dir() {
  const std::string p = self_exe();
  return p.substr(0, p.find_last_of('/'));
}

// main() of a benchmark: run(argc, argv), an exception becomes "<name>: error: <what>" and exit 1.
template <class Run>
int guarded_main(const char* name, int argc, char** argv, Run run) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace mmkit::bench
