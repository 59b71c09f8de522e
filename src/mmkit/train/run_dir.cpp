#include "mmkit/train/run_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace mmkit::train {

namespace {
std::atomic<int> g_stop_signal{0};
void on_signal(int sig) { g_stop_signal = sig; }
struct sigaction g_old_int {}, g_old_term {};
}  // namespace

StopSignals::StopSignals() {
  g_stop_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int stop_signal() { return g_stop_signal; }

void make_output_dir(const std::string& dir) {
  MMKIT_CHECK(!dir.empty(), "no output directory given (--out DIR)");
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        fail("cannot create output directory ", dir, ": ", std::strerror(errno), " (at ", cur, ")");
    }
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

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::vector<io::NamedTensor> optimizer_tensors(AdamW& opt) {
  std::vector<io::NamedTensor> extra;
  const auto& ps = opt.params();
  for (size_t k = 0; k < ps.size(); ++k) {
    extra.push_back({"optim.exp_avg." + ps[k]->name, opt.exp_avg()[k]});
    extra.push_back({"optim.exp_avg_sq." + ps[k]->name, opt.exp_avg_sq()[k]});
  }
  return extra;
}

void load_optimizer_state(const io::SafetensorsFile& ck, AdamW& opt, int64_t steps) {
  const auto& ps = opt.params();
  for (size_t k = 0; k < ps.size(); ++k) {
    for (auto [prefix, buf] : {std::pair{"optim.exp_avg.", &opt.exp_avg()[k]},
                               std::pair{"optim.exp_avg_sq.", &opt.exp_avg_sq()[k]}}) {
      Tensor t = io::read_tensor_f32(ck, prefix + ps[k]->name);
      MMKIT_CHECK(t.shape() == buf->shape(), ck.path(), ": optimizer state for ", ps[k]->name,
                  " has shape ", t.shape().str(), ", expected ", buf->shape().str());
      std::memcpy(buf->raw(), t.raw(), t.nbytes());
    }
  }
  opt.set_steps(steps);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.flush();
    if (!f) fail("cannot write ", tmp, ": ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot write ", path, ": ", std::strerror(errno));
}

}  // namespace mmkit::train
