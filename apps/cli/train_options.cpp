// The options every `mmkit train <model>` shares, registered in one place
// (train::TrainOptions; the loop in src/mmkit/train/train_loop.h reads them),
// and --resume's restoring of a run's stored options (StoredFlags, cli.h).
#include <cmath>
#include <cstdio>

#include "cli.h"
#include "mmkit/core/error.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/train/run_dir.h"
#include "mmkit/train/train_options.h"
#include "mmkit/util/stop_signal.h"

namespace mmkit::cli {

std::shared_ptr<StoredFlags> add_train_options(CLI::App* cmd, train::TrainOptions* o, const TrainFlagText& t) {
  cmd->add_option("--out", o->out_dir, "run folder (checkpoints, model.safetensors, history, curves; created)")
      ->required();
  cmd->add_option("--epochs", o->epochs, "passes over the training data")->capture_default_str();
  cmd->add_option(t.batch_flag, o->batch, t.batch_help)->capture_default_str();
  cmd->add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o->min_lr, "final learning rate of the cosine schedule")->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--warmup-steps", o->warmup_steps, t.warmup_help)->capture_default_str();
  cmd->add_option("--clip-grad", o->clip_grad, "max global gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed: weights, data order, augmentation, dropout")->capture_default_str();
  add_threads_option(cmd, &o->threads);
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "steps between checkpoints (epoch ends always save)")
      ->capture_default_str();
  cmd->add_flag("--resume", o->resume,
                "continue the run in --out from its last checkpoint, with the training options it was started with");
  cmd->add_option("--limit-train", o->limit_train, std::string("use only the first N training ") + t.items + " (0: all)")
      ->capture_default_str();
  cmd->add_option("--limit-test", o->limit_test, std::string("use only the first N test ") + t.items + " (0: all)")
      ->capture_default_str();
  cmd->add_option("--max-steps", o->max_steps, "stop (with a checkpoint and model.safetensors) after this many steps (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--precision", o->precision,
                  "fp32, or bf16: mixed precision (bf16 matrix products with f32 accumulation; weights, optimizer "
                  "state, norms, softmax, losses and checkpoints stay f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));

  // What train/train_loop.cpp's state_json stores under train_state.options.
  auto s = std::make_shared<StoredFlags>();
  s->cmd = cmd;
  cmd->add_flag("--override", s->override_options,
                "with --resume: let training flags given again replace the run's stored values (e.g. more --epochs)");
  s->option("--epochs", "epochs", &o->epochs);
  s->option(t.batch_flag, "batch", &o->batch);
  s->option("--lr", "lr", &o->lr);
  s->option("--min-lr", "min_lr", &o->min_lr);
  s->option("--weight-decay", "weight_decay", &o->weight_decay);
  s->option("--warmup-steps", "warmup_steps", &o->warmup_steps);
  s->option("--clip-grad", "clip_grad", &o->clip_grad);
  s->option("--seed", "seed", &o->seed);
  s->option("--limit-train", "limit_train", &o->limit_train);
  s->option("--limit-test", "limit_test", &o->limit_test);
  s->option("--precision", "precision", &o->precision);
  return s;
}

void StoredFlags::add(const std::string& flag, const std::string& key, bool in_config,
                      std::function<nlohmann::json()> get, std::function<void(const nlohmann::json&)> set) {
  bindings_.push_back({flag, key, in_config, std::move(get), std::move(set)});
}

namespace {

// 0.0010000000474974513 (a float stored as JSON) -> "0.001".
std::string show(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v.get<double>());
    return b;
  }
  if (v.is_string()) return v.get<std::string>().empty() ? "\"\"" : v.get<std::string>();
  return v.dump();
}

// Stored floats were floats: compare at float precision (json(1e-3f) == the stored value exactly,
// but a flag parsed as double elsewhere would not be).
bool same(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return float(a.get<double>()) == float(b.get<double>());
  return a == b;
}

}  // namespace

void StoredFlags::restore(const train::TrainOptions& o) const {
  if (!o.resume) return;
  const train::StoredRun run = train::read_stored_run(o.out_dir);
  if (!run.exists) return;  // nothing to resume: a new run
  std::string changed, restored;
  for (const Binding& b : bindings_) {
    const nlohmann::json* stored = nullptr;
    if (b.in_config) {
      const nlohmann::json::json_pointer ptr(b.key);
      if (run.config.contains(ptr)) stored = &run.config.at(ptr);
    } else if (run.options.contains(b.key)) {
      stored = &run.options.at(b.key);
    }
    if (!stored) continue;  // a checkpoint from before this field was stored
    const CLI::Option* opt = cmd->get_option(b.flag);
    const nlohmann::json now = b.get();
    if (opt->count() == 0) {
      if (b.set && !same(now, *stored)) {
        b.set(*stored);
        restored += " " + b.flag + " " + show(*stored);
      }
      continue;
    }
    if (same(now, *stored)) continue;
    if (b.in_config)
      fail(b.flag, " ", show(now), " differs from the run's ", show(*stored), " (", run.checkpoint,
           "): the model's architecture cannot change on --resume; drop the flag, or start a new run in another --out");
    if (override_options) {
      if (is_root_process())  // data-parallel: one message, not one per rank
        std::fprintf(stderr, "resume: %s %s replaces the run's %s (--override)\n", b.flag.c_str(), show(now).c_str(),
                     show(*stored).c_str());
      continue;
    }
    changed += (changed.empty() ? "" : ", ") + b.flag + " " + show(now) + " (stored: " + show(*stored) + ")";
  }
  if (!changed.empty())
    fail("--resume continues ", o.out_dir, " with the training options stored in its checkpoint, and these flags ",
         "differ from them: ", changed, ". Drop them, or pass --override to change them");
  if (!restored.empty() && is_root_process()) std::fprintf(stderr, "resume: the run's stored options:%s\n", restored.c_str());
}

int training_exit_code() {
  const int sig = stop_signal();
  return sig ? 128 + sig : 0;  // interrupted: the checkpoint is saved; the shell's convention
}

bool is_root_process() { return dist::world().rank() == 0; }

}  // namespace mmkit::cli
