// One training loop for every model (ViT, CLIP, VQA, captioner). The loop
// owns what runs share: option checks, the run directory, step-exact resume,
// data order, warmup + cosine schedule, gradient clipping, AdamW, atomic
// checkpoints, SIGINT/SIGTERM, progress bar, per-epoch evaluation hook,
// history.json and the training curves. A model supplies a TrainTask: its
// data and model, its batch -> loss, its evaluation and its files.
//
//   struct MyTask : train::TrainTask { ... };          // see vit_trainer.cpp (~150 lines)
//   MyTask task(opts);
//   std::vector<nlohmann::json> history = train::run_training(task, opts, stderr);
//
// A step: load_batch(batch) -> the next batch's indices go to prefetch (so
// images decode while this step computes) -> forward (graph reset, dropout
// seed mix64(seed * 7919 + step)) -> loss checked finite -> backward ->
// AdamW at warmup_cosine_lr(step) with the clipping factor fused in ->
// after_update. Data order depends only on (seed, epoch), augmentation and
// dropout on (seed, step), so a resumed run repeats the uninterrupted one bit
// for bit (tools/train_fingerprints.sh).
//
// Run directory: checkpoint.safetensors (weights, "optim.*" AdamW moments,
// metadata "config", "train_state", "format" and the task's own, e.g. a
// tokenizer), the task's model file (model.safetensors), history.json and
// training_curves.png; every file is written atomically.
#pragma once
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mmkit/autograd/graph.h"
#include "mmkit/autograd/optimizer.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/nn/module.h"
#include "mmkit/report/plots.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/train/train_options.h"

namespace mmkit::train {

// What a task's forward pass gives for one batch.
// Data-parallel: each rank's loss is the mean over its own rows; the loop
// weighs each rank's gradients by weight / (the global batch's weight), so
// the update is that of the mean over the global batch.
struct StepOutput {
  Var loss;           // scalar; invalid: nothing to learn from these rows (no update from them; the step still counts)
  double weight = 0;  // items the loss is a mean over (images, pairs, questions, target tokens)
  double metric = 0;  // the task's running metric summed over those items (correct predictions, accuracy)
};

// The size of a run, for the task's summary lines.
struct RunShape {
  int64_t steps_per_epoch = 0, parameters = 0, trainable = 0;
  int epochs = 0, batch = 0, threads = 0;
};

// A finished epoch's training statistics, given to end_epoch.
struct EpochStats {
  int epoch = 0, epochs = 0;  // epoch is 1-based
  double train_loss = 0;      // loss averaged over the epoch's weight
  double train_metric = 0;    // metric sum / weight
  double weight = 0;
  double seconds = 0;         // wall time of the epoch's steps, summed over resumes
  int64_t items = 0;          // steps_per_epoch x batch
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;

  struct Info {
    std::string name;                // "ViT", in messages
    std::string format;              // checkpoint metadata "format"
    std::string unit = "img/s";      // progress rate unit
    std::string batch_flag = "--batch";
    int min_batch = 1, max_batch = 65536;
    std::string batch_why;           // appended to the batch range error
    // train_state field names of the epoch's running weight and metric sums
    // (names of the checkpoint format: earlier checkpoints still resume).
    std::string weight_field = "seen", metric_field = "correct";
  };
  virtual Info info() const = 0;

  // Data, then config and model: fresh, or from the checkpoint being resumed
  // (`resume` non-null; its metadata holds what config_json and
  // checkpoint_metadata wrote).
  virtual void setup(const io::SafetensorsFile* resume, std::FILE* log) = 0;
  virtual nn::ParamList parameters() = 0;  // frozen ones marked !trainable
  virtual int64_t train_size() const = 0;   // items the batcher shuffles
  virtual int64_t default_warmup(int64_t steps_per_epoch) const { return steps_per_epoch; }
  virtual void describe(std::FILE* log, const RunShape& s) const = 0;

  // Per step. `batch` is the global batch (item indices, the same on every
  // rank); this process computes its rows [row0, row0 + rows) (all of them
  // in a single process). load_batch fills the task's input buffers for
  // those rows, with randomness drawn from (seed, step, global row), so the
  // result does not depend on the number of processes; prefetch may start
  // loading the next batch's rows in the background.
  virtual void load_batch(const std::vector<int64_t>& batch, int64_t row0, int64_t rows, int epoch,
                          int64_t step) = 0;
  virtual void prefetch(const std::vector<int64_t>& next_batch, int64_t row0, int64_t rows, int64_t next_step) {}
  virtual StepOutput forward(Graph& g, int epoch, int64_t step) = 0;
  virtual void after_update(float loss) {}           // e.g. CLIP's temperature clamp
  virtual std::string progress_extra() const { return ""; }  // shown before the learning rate

  // Evaluates, prints the epoch's line, returns its history record.
  virtual nlohmann::json end_epoch(const EpochStats& s, std::FILE* log) = 0;
  virtual EpochPoint curve_point(const nlohmann::json& record) const = 0;
  virtual std::string curve_title() const = 0;

  // Files.
  virtual std::string config_json() const = 0;
  virtual void checkpoint_metadata(std::map<std::string, std::string>* meta) const {}
  virtual void save_model(const std::string& path) = 0;  // OUT/model.safetensors
  virtual nlohmann::json options_json() const { return nlohmann::json::object(); }
  virtual void save_state(nlohmann::json* train_state) const {}  // the task's running state
  virtual void load_state(const TrainStateReader& r) {}
};

// Runs (or resumes) training; returns one record per finished epoch (the
// task's JSON, as in history.json). Throws mmkit::Error with a clear message
// on bad options, data, directories or checkpoints. SIGINT/SIGTERM or
// max_steps save a checkpoint and return early (stop_signal() tells which).
//
// Under `mpirun -np N` (dist::world()), every rank runs this with the same
// options: --batch is the global batch (N must divide it), each rank takes
// its slice of every global batch, gradients are summed across ranks in
// buckets before clipping and AdamW (which then run on identical values
// everywhere), the running sums and the stop decision are reduced, and rank
// 0 alone prints, writes checkpoints, history and curves.
std::vector<nlohmann::json> run_training(TrainTask& task, const TrainOptions& o, std::FILE* log);

// The history's records as a trainer's typed records.
template <class Record>
std::vector<Record> typed_history(const std::vector<nlohmann::json>& history,
                                  Record (*from_json)(const nlohmann::json&)) {
  std::vector<Record> out;
  for (const auto& r : history) out.push_back(from_json(r));
  return out;
}

// Data-parallel: sums the trainable gradients of `params` over the ranks of
// `comm`, each rank's multiplied by `scale` first (its share of the global
// batch's weight), packed into buckets of at most 16 MB (one all-reduce per
// bucket, not per tensor); adds the seconds spent in the all-reduces to
// *comm_seconds. `buffer` is reused between steps.
void allreduce_gradients(dist::Communicator& comm, const nn::ParamList& params, float scale, std::vector<float>* buffer,
                         double* comm_seconds);

// The update part of a step: backward from `loss`, the clipping factor of
// the global gradient norm (clip_grad <= 0: off) and AdamW at `lr` in one
// pass that also zeroes the gradients (which are zero on entry).
void backward_and_update(Graph& g, Var loss, AdamW& opt, float lr, float clip_grad);

}  // namespace mmkit::train
