// Small file-system helpers shared by data writers and trainers.
//
//   mmkit::make_dirs("runs/cap/plots");                  // mkdir -p, then checks it is a writable directory
//   mmkit::write_text_atomic("runs/cap/history.json", text);   // temp file + fsync + rename
#pragma once
#include <string>

namespace mmkit {

// Creates `dir` and its parents; throws mmkit::Error naming the path when a
// component cannot be created, is not a directory, or `dir` is not writable.
void make_dirs(const std::string& dir);

// Writes `text` to "<path>.tmp.<pid>", fsyncs and renames it over `path`, so
// readers never see a partial file. Throws mmkit::Error on failure.
void write_text_atomic(const std::string& path, const std::string& text);
// Copies the file `from` to `to` the same way (any bytes). Throws naming `from` when it is unreadable.
void copy_file_atomic(const std::string& from, const std::string& to);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// "a/b/c.jsonl" -> "a/b/" ("" for a bare file name): prefix for relative paths.
std::string parent_dir(const std::string& path);
// What every `--model` takes: a model file, a run folder (from `mmkit train`) or
// a Hugging Face model folder -- a folder means its model.safetensors. Returns
// the file; throws naming the path and what was looked for (`hint` adds how to
// make one, e.g. "train one with `mmkit train vit --out DIR`").
std::string resolve_model_file(const std::string& path, const std::string& hint = "");
// How a model given by path is named to users: "runs/soc/" -> "soc",
// "runs/soc/model.safetensors" -> "soc/model.safetensors", "m.safetensors" -> itself.
std::string model_display_name(const std::string& path);

}  // namespace mmkit
