#include "cli.h"

#include <sys/stat.h>

#include "mmkit/data/fashion_mnist.h"

namespace mmkit::cli {

std::string data_dir(const std::string& d) {
  return d == "fashion-mnist" ? std::string(data::kFashionMnistDir) : d;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    std::string part = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
    size_t a = part.find_first_not_of(" \t"), b = part.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(part.substr(a, b - a + 1));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

CLI::Option* add_threads_option(CLI::App* cmd, int* threads) {
  return cmd->add_option("--threads", *threads, "compute threads (OpenMP; 0: all cores)")->capture_default_str();
}

std::string model_dir(const std::string& model) {
  struct stat st {};
  if (::stat(model.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return model;
  size_t slash = model.find_last_of('/');
  return slash == std::string::npos ? "." : model.substr(0, slash);
}

}  // namespace mmkit::cli
