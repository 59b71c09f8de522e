// Shared plumbing of the `mmkit` command line. Each command group lives in
// its own file (vit_commands.cpp, clip_commands.cpp, ...) and registers its
// subcommands with an add_*_commands function; a subcommand's CLI11 callback
// only stores the action to run, so main() runs it after parsing, inside one
// error handler (mmkit::Error -> "mmkit: error: ..." and exit 1).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mmkit::train {
struct TrainOptions;
}

namespace mmkit::cli {

struct Cli {
  CLI::App* app = nullptr;
  CLI::App* train = nullptr;  // `mmkit train <model>`
  CLI::App* eval = nullptr;   // `mmkit eval <what>`
  CLI::App* data = nullptr;   // `mmkit data <dataset>`
  std::function<int()> action;  // set by the parsed subcommand's callback

  // Registers `fn(*args)` as the action of `cmd` when it is parsed.
  template <class Args, class Fn>
  void on(CLI::App* cmd, std::shared_ptr<Args> args, Fn fn) {
    cmd->callback([this, args, fn] { action = [args, fn] { return fn(*args); }; });
  }
};

// --threads (OpenMP threads per forward; 0: all cores), registered the same
// way by every command that computes.
CLI::Option* add_threads_option(CLI::App* cmd, int* threads);

// The options of train::TrainOptions, for `mmkit train <model>`; the texts
// that differ between models.
struct TrainFlagText {
  const char* batch_flag = "--batch";
  const char* batch_help = "items per step";
  const char* warmup_help = "linear warmup steps (-1: one epoch)";
  const char* items = "images";  // what --limit-train / --limit-test count
};
void add_train_options(CLI::App* cmd, train::TrainOptions* o, const TrainFlagText& t = {});
// After a training run: 128 + the signal that interrupted it (its checkpoint
// is saved), else 0.
int training_exit_code();
// False on the ranks other than 0 of a data-parallel job (`mpirun -np N
// mmkit train ...`), which print nothing.
bool is_root_process();

// "fashion-mnist" names the Debian package's directory; anything else is a
// directory holding the same four IDX files.
std::string data_dir(const std::string& d);

// "a, b ,c" -> {"a","b","c"} (empty parts dropped).
std::vector<std::string> split_commas(const std::string& s);

// Directory for outputs written next to a model: DIR for DIR/x.safetensors,
// the path itself when it is a directory.
std::string model_dir(const std::string& model);

void add_vit_commands(Cli& c);         // train vit, eval vit, classify
void add_clip_commands(Cli& c);        // embed, tokenize, zero-shot, init-clip
void add_clip_train_commands(Cli& c);  // train clip, eval zero-shot, eval retrieval
void add_serve_commands(Cli& c);       // serve
void add_index_commands(Cli& c);       // index build, search
void add_vqa_commands(Cli& c);         // train vqa, eval vqa, vqa
void add_caption_commands(Cli& c);     // train caption, eval caption, caption
void add_data_commands(Cli& c);        // data shapes, data sort-of-clevr, data soc-captions
void add_quantize_commands(Cli& c);    // quantize

}  // namespace mmkit::cli
