// What every trainer (ViT, CLIP, VQA, captioning) needs around its loop: the
// output directory, stop signals, optimizer state in checkpoints and atomic
// text files. One copy here so each trainer is only its model's loop.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"

namespace mmkit::train {

// Creates `dir` (and parents) and checks it is writable, so a bad --out
// fails before any training. Throws naming the path and the OS error.
void make_output_dir(const std::string& dir);

bool file_exists(const std::string& path);

// Installs SIGINT/SIGTERM handlers for its lifetime; stop_signal() then
// reports the signal (0 if none) so the loop can checkpoint and return.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};
int stop_signal();  // the signal caught by the current/last StopSignals scope, or 0

// AdamW moments as extra checkpoint tensors "optim.exp_avg.<param>" and
// "optim.exp_avg_sq.<param>".
std::vector<io::NamedTensor> optimizer_tensors(AdamW& opt);
// Restores them (shapes checked, messages name the checkpoint) and the step count.
void load_optimizer_state(const io::SafetensorsFile& ck, AdamW& opt, int64_t steps);

// Writes `text` to `path` via a temporary file + rename.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace mmkit::train
