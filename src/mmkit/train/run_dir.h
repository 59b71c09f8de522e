// The run directory's files below the training loop (train/train_loop.h):
// optimizer state in training checkpoints, reading the checkpoint metadata
// "train_state" with errors that name the field, and history.json + curves.
// Directories and atomic text files are in util/file_util.h.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/report/plots.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"

namespace mmkit::train {

// AdamW moments as extra checkpoint tensors "optim.exp_avg.<param>" and
// "optim.exp_avg_sq.<param>".
std::vector<io::NamedTensor> optimizer_tensors(AdamW& opt);
// Restores them (shapes checked, messages name the checkpoint) and the step count.
void load_optimizer_state(const io::SafetensorsFile& ck, AdamW& opt, int64_t steps);
// --resume: the weights (every tensor but "optim.*", names and shapes
// checked) and then the optimizer state, from a training checkpoint.
void resume_from_checkpoint(const io::SafetensorsFile& ck, const std::vector<Parameter*>& params, AdamW& opt,
                            int64_t steps);

// Reads a "train_state" string of checkpoint `path`. Every failure (not
// JSON, a field missing or of the wrong type) throws
//   "checkpoint <path>: unreadable train_state metadata (field '<name>': <what>)".
class TrainStateReader {
 public:
  TrainStateReader(const std::string& text, const std::string& path);
  // A required field.
  template <class T>
  T get(const char* field) const {
    try {
      return j_.at(field).get<T>();
    } catch (const std::exception& e) {
      fail_field(field, e.what());
    }
  }
  // An optional field: `absent` when missing; still an error if of the wrong type.
  template <class T>
  T get(const char* field, T absent) const {
    return j_.contains(field) ? get<T>(field) : absent;
  }
  // An array of JSON objects (the epoch records of "history").
  std::vector<nlohmann::json> records(const char* field) const;

 private:
  [[noreturn]] void fail_field(const char* field, const char* what) const;
  nlohmann::json j_;
  std::string path_;
};

// Where a run stands: the position, the epoch's running sums and the
// finished epochs' records (the task's JSON objects, as in history.json).
struct RunState {
  int64_t step = 0;            // optimizer steps done
  int epoch = 0;               // 0-based epoch in progress
  int64_t batch_in_epoch = 0;  // batches of `epoch` already done
  double epoch_seconds = 0;    // wall time of `epoch`'s steps so far (summed over resumes)
  double loss_sum = 0;         // sum over the epoch's steps of loss x weight
  double weight = 0;           // items the losses averaged over (images, questions, tokens)
  double metric = 0;           // the task's metric summed over them (correct predictions, accuracy)
  std::vector<nlohmann::json> history;
};

// The checkpoint metadata "train_state": fields "step", "epoch",
// "batch_in_epoch", "epoch_seconds", "loss_sum", "history" and the running
// sums under the task's names (`weight_field`, `metric_field`: "seen",
// "tokens"; "correct", "acc_sum"). Field names are the checkpoint format:
// checkpoints written earlier must still resume. The loop adds "options" and
// the task its own fields.
nlohmann::json run_state_json(const RunState& s, const std::string& weight_field, const std::string& metric_field);
RunState read_run_state(const TrainStateReader& r, const std::string& weight_field, const std::string& metric_field);

// What --resume finds in `out_dir`: its checkpoint's training options (the
// "options" object of "train_state") and model "config", parsed. `exists` is
// false when there is no checkpoint (nothing to resume). Throws naming the
// checkpoint when its metadata is unreadable.
struct StoredRun {
  bool exists = false;
  std::string checkpoint;  // out_dir/checkpoint.safetensors
  nlohmann::json options = nlohmann::json::object(), config = nlohmann::json::object();
};
StoredRun read_stored_run(const std::string& out_dir);

// DIR/history.json: the history records as a JSON array (the same objects as
// in train_state), written atomically; and DIR/training_curves.png when there
// is at least one epoch.
void write_history_files(const std::string& dir, const nlohmann::json& records, const std::vector<EpochPoint>& pts,
                         const std::string& title);

}  // namespace mmkit::train
