// What every trainer (ViT, CLIP, VQA, captioning) shares about a run
// directory: optimizer state in training checkpoints, the run position
// stored as checkpoint metadata "train_state", and history.json. Directories
// and atomic text files are in util/file_util.h; SIGINT/SIGTERM handling in
// train/stop_signal.h.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/eval/plots.h"
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

// Where a run stands, with the records of its finished epochs. A trainer's
// state derives from it and adds its running sums over the epoch so far
// (loss_sum, correct, ...). `Record` is the trainer's epoch record; it
// crosses JSON through functions the trainer passes in (record_json /
// record_from_json).
template <class Record>
struct RunPosition {
  int64_t step = 0;            // optimizer steps done
  int epoch = 0;               // 0-based epoch in progress
  int64_t batch_in_epoch = 0;  // batches of `epoch` already done
  double epoch_seconds = 0;    // wall time of `epoch`'s steps so far (summed over resumes)
  std::vector<Record> history; // one record per finished epoch
};

// The checkpoint metadata "train_state": a JSON object whose fields "step",
// "epoch", "batch_in_epoch", "epoch_seconds" and "history" (an array of
// records, as in history.json) are the RunPosition; the trainer adds its
// own fields (running sums, "options", ...). Field names are the checkpoint
// format: checkpoints written earlier must still resume.
template <class Record, class ToJson>
nlohmann::json run_position_json(const RunPosition<Record>& p, ToJson record_json) {
  nlohmann::json j = {{"step", p.step},
                      {"epoch", p.epoch},
                      {"batch_in_epoch", p.batch_in_epoch},
                      {"epoch_seconds", p.epoch_seconds},
                      {"history", nlohmann::json::array()}};
  for (const Record& r : p.history) j["history"].push_back(record_json(r));
  return j;
}

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
  // The RunPosition fields; `record_from_json` (json -> Record) reads each
  // history entry, whose failures name the entry ("history[2]").
  template <class Record, class FromJson>
  void read_position(RunPosition<Record>* p, FromJson record_from_json) const {
    p->step = get<int64_t>("step");
    p->epoch = get<int>("epoch");
    p->batch_in_epoch = get<int64_t>("batch_in_epoch");
    p->epoch_seconds = get<double>("epoch_seconds", 0.0);
    const nlohmann::json h = get<nlohmann::json>("history");
    if (!h.is_array()) fail_field("history", "not an array");
    p->history.clear();
    for (size_t i = 0; i < h.size(); ++i) {
      try {
        p->history.push_back(record_from_json(h[i]));
      } catch (const std::exception& e) {
        fail_field(("history[" + std::to_string(i) + "]").c_str(), e.what());
      }
    }
  }

 private:
  [[noreturn]] void fail_field(const char* field, const char* what) const;
  nlohmann::json j_;
  std::string path_;
};

// DIR/history.json: the history records as a JSON array (the same objects as
// in train_state), written atomically; and DIR/training_curves.png from
// `to_point` (Record -> EpochPoint) when there is at least one epoch.
void write_history_files(const std::string& dir, const nlohmann::json& records, const std::vector<EpochPoint>& pts,
                         const std::string& title);
template <class Record, class ToJson, class ToPoint>
void write_history(const std::string& dir, const std::vector<Record>& history, ToJson record_json, ToPoint to_point,
                   const std::string& title) {
  nlohmann::json j = nlohmann::json::array();
  std::vector<EpochPoint> pts;
  for (const Record& r : history) {
    j.push_back(record_json(r));
    pts.push_back(to_point(r));
  }
  write_history_files(dir, j, pts, title);
}

}  // namespace mmkit::train
