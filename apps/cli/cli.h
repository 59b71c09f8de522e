// Shared plumbing of the `mmkit` command line. Each command group lives in
// its own file (vit_commands.cpp, clip_commands.cpp, ...) and registers its
// subcommands with an add_*_commands function; a subcommand's CLI11 callback
// only stores the action to run, so main() runs it after parsing, inside one
// error handler (mmkit::Error -> "mmkit: error: ..." and exit 1).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
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

// ---- Conventions: one name, one help text and one default per concept in
// every command (docs/CLI.md lists them; tests/test_cli_walk.cpp checks the
// whole command line against that list).

// --threads (OpenMP threads per forward; 0: all cores), registered the same
// way by every command that computes.
CLI::Option* add_threads_option(CLI::App* cmd, int* threads);
// --model: a model file, a run folder or a Hugging Face folder, for every
// command (the loaders resolve a folder to its model.safetensors). `kind`
// starts the help text: "CLIP", "ViT", "VQA", "captioning".
CLI::Option* add_model_option(CLI::App* cmd, std::string* model, const std::string& kind,
                              const std::string& name = "--model");
// --vocab: the CLIP tokenizer, described the same way everywhere.
CLI::Option* add_vocab_option(CLI::App* cmd, std::string* vocab);
// --norm pre|post (the trainers whose blocks can be either).
inline constexpr const char* kNormHelp =
    "transformer blocks: post (residual, then LayerNorm) or pre (LayerNorm first; a final LayerNorm)";
// --json: JSON on stdout instead of readable lines.
CLI::Option* add_json_flag(CLI::App* cmd, bool* json);
// --top-k: how many answers, labels or results to list (5, as over HTTP: "top_k").
inline constexpr int kDefaultTopK = 5;
CLI::Option* add_top_k_option(CLI::App* cmd, int* top_k);
// A repeatable option whose every occurrence takes exactly one value, so it
// never swallows the positional arguments after it (`--template "a {}." img.png`).
CLI::Option* add_repeatable(CLI::App* cmd, const std::string& name, std::vector<std::string>* values,
                            const std::string& help);
// --out FILE (and other output files): their folders are created.
void make_parent_dirs(const std::string& file);
// --labels FILE: one class name per line, in the model's class order; errors name the file and
// the counts.
std::vector<std::string> read_label_file(const std::string& path, int64_t classes);
// "1 epoch", "2 epochs".
std::string plural(int64_t n, const std::string& word);

// The options of train::TrainOptions, for `mmkit train <model>`; the texts
// that differ between models.
struct TrainFlagText {
  const char* batch_flag = "--batch";
  const char* batch_help = "items per step";
  const char* warmup_help = "linear warmup steps (-1: one epoch)";
  const char* items = "images";  // what --limit-train / --limit-test count
};
struct StoredFlags;
// Also registers --override; returns what --resume needs: the flags a run stores in its checkpoint.
std::shared_ptr<StoredFlags> add_train_options(CLI::App* cmd, train::TrainOptions* o, const TrainFlagText& t = {});
// After a training run: 128 + the signal that interrupted it (its checkpoint
// is saved), else 0.
int training_exit_code();
// False on the ranks other than 0 of a data-parallel job (`mpirun -np N
// mmkit train ...`), which print nothing.
bool is_root_process();

// --resume restores the run's training options. A flag is bound to where the
// run's checkpoint stores it: the "options" object of its train_state (what
// train/train_loop.cpp's state_json writes) or the model "config" (the
// architecture, which cannot change). On --resume, a bound flag not given
// takes the stored value; a flag given with another value is an error, unless
// --override allows it for a training option. Flags not bound (--threads,
// --max-steps, --checkpoint-every) apply to this invocation only.
struct StoredFlags {
  // `key` in train_state.options.
  template <class T>
  void option(const std::string& flag, const std::string& key, T* value) {
    add(flag, key, false, [value] { return nlohmann::json(*value); },
        [value](const nlohmann::json& j) { *value = j.get<T>(); });
  }
  // A --no-X flag whose run stores X.
  void negated_option(const std::string& flag, const std::string& key, bool* no_x) {
    add(flag, key, false, [no_x] { return nlohmann::json(!*no_x); },
        [no_x](const nlohmann::json& j) { *no_x = !j.get<bool>(); });
  }
  // An architecture flag: `pointer` is a JSON pointer into the model config ("/vision/dim").
  template <class T>
  void config(const std::string& flag, const std::string& pointer, T* value) {
    add(flag, pointer, true, [value] { return nlohmann::json(*value); }, nullptr);
  }
  // The same with any mapping from the flag to the stored value (--norm pre -> norm_first: true).
  void config_as(const std::string& flag, const std::string& pointer, std::function<nlohmann::json()> get) {
    add(flag, pointer, true, std::move(get), nullptr);
  }
  // With --resume and a checkpoint in o.out_dir: the rules above (stderr says
  // what it restored). No-op otherwise.
  void restore(const train::TrainOptions& o) const;

  CLI::App* cmd = nullptr;
  bool override_options = false;  // --override

 private:
  struct Binding {
    std::string flag, key;
    bool in_config;
    std::function<nlohmann::json()> get;
    std::function<void(const nlohmann::json&)> set;
  };
  void add(const std::string& flag, const std::string& key, bool in_config, std::function<nlohmann::json()> get,
           std::function<void(const nlohmann::json&)> set);
  std::vector<Binding> bindings_;
};

// "fashion-mnist" names the Debian package's directory; anything else is a
// directory holding the same four IDX files.
std::string data_dir(const std::string& d);

// "a, b ,c" -> {"a","b","c"} (empty parts dropped).
std::vector<std::string> split_commas(const std::string& s);

// Directory for outputs written next to a model: DIR for DIR/x.safetensors,
// the path itself when it is a directory.
std::string model_dir(const std::string& model);

// The whole command line: `app` gets the train/eval/data groups and every command below, `c` its
// action once parsed. Used by main() and by the Python module's mmkit.train (the same options,
// defaults and --resume rules as `mmkit train`).
inline constexpr const char* kAppDescription =
    "mmkit: vision-language models in C++ (train, evaluate and run ViT, CLIP, VQA and captioning models)";
void register_commands(CLI::App& app, Cli& c);

void add_vit_commands(Cli& c);         // train vit, eval vit, classify
void add_clip_commands(Cli& c);        // embed, tokenize, zero-shot, init-clip
void add_clip_train_commands(Cli& c);  // train clip, eval zero-shot, eval retrieval
void add_serve_commands(Cli& c);       // serve
void add_index_commands(Cli& c);       // index build, search
void add_vqa_commands(Cli& c);         // train vqa, eval vqa, vqa
void add_caption_commands(Cli& c);     // train caption, eval caption, caption
void add_data_commands(Cli& c);        // data shapes, data sort-of-clevr, data soc-captions
void add_quantize_commands(Cli& c);    // quantize
void add_reference_commands(Cli& c);   // commands (the whole command line, readable or as JSON)

}  // namespace mmkit::cli
