#include "cli.h"

#include <sys/stat.h>

#include <fstream>

#include "mmkit/core/error.h"
#include "mmkit/data/fashion_mnist.h"
#include "mmkit/util/file_util.h"

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

CLI::Option* add_model_option(CLI::App* cmd, std::string* model, const std::string& kind, const std::string& name) {
  return cmd->add_option(name, *model, kind + " model: a .safetensors file, a run folder or a Hugging Face folder");
}

CLI::Option* add_vocab_option(CLI::App* cmd, std::string* vocab) {
  return cmd->add_option("--vocab", *vocab,
                         "CLIP tokenizer: bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt; "
                         "SigLIP: its spiece.model (default: the model's own: embedded in its file, else these files "
                         "beside it)");
}

CLI::Option* add_json_flag(CLI::App* cmd, bool* json) {
  return cmd->add_flag("--json", *json, "print JSON (default: readable lines)");
}

CLI::Option* add_top_k_option(CLI::App* cmd, int* top_k) {
  *top_k = kDefaultTopK;
  return cmd->add_option("--top-k", *top_k, "how many answers, classes or results to list, best first")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

CLI::Option* add_repeatable(CLI::App* cmd, const std::string& name, std::vector<std::string>* values,
                            const std::string& help) {
  return cmd->add_option(name, *values, help + " (repeatable: one value per " + name + ")")->allow_extra_args(false);
}

void make_parent_dirs(const std::string& file) {
  const std::string dir = parent_dir(file);
  if (!dir.empty() && !is_directory(dir)) make_dirs(dir);
}

// --labels FILE: one class name per line (blank lines at the end ignored), in the model's class order.
std::vector<std::string> read_label_file(const std::string& path, int64_t classes) {
  std::ifstream f(path);
  MMKIT_CHECK(f, "cannot read --labels ", path);
  std::vector<std::string> names;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  MMKIT_CHECK(int64_t(names.size()) == classes, "--labels ", path, " has ", names.size(),
              " lines but the model has ", classes, " classes (one class name per line, in class order)");
  for (size_t k = 0; k < names.size(); ++k)
    MMKIT_CHECK(!names[k].empty(), "--labels ", path, ": line ", k + 1, " is empty (one class name per line)");
  return names;
}

std::string plural(int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string model_dir(const std::string& model_in) {
  std::string model = model_in;
  while (model.size() > 1 && model.back() == '/') model.pop_back();
  struct stat st {};
  if (::stat(model.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return model;
  size_t slash = model.find_last_of('/');
  return slash == std::string::npos ? "." : model.substr(0, slash);
}

void register_commands(CLI::App& app, Cli& c) {
  app.require_subcommand(1);
  c.app = &app;
  c.train = app.add_subcommand("train", "train a model");
  c.train->require_subcommand(1);
  c.eval = app.add_subcommand("eval", "evaluate a model");
  c.eval->require_subcommand(1);
  c.data = app.add_subcommand("data", "generate a dataset");
  c.data->require_subcommand(1);

  add_vit_commands(c);
  add_clip_commands(c);
  add_clip_train_commands(c);
  add_serve_commands(c);
  add_index_commands(c);
  add_vqa_commands(c);
  add_caption_commands(c);
  add_data_commands(c);
  add_quantize_commands(c);
  add_reference_commands(c);
}

}  // namespace mmkit::cli
