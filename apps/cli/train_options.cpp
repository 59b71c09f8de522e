// The options every `mmkit train <model>` shares, registered in one place
// (train::TrainOptions; the loop in src/mmkit/train/train_loop.h reads them).
#include "cli.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/train/train_options.h"
#include "mmkit/util/stop_signal.h"

namespace mmkit::cli {

void add_train_options(CLI::App* cmd, train::TrainOptions* o, const TrainFlagText& t) {
  cmd->add_option("--out", o->out_dir, "output directory (checkpoints, model, history, curves)")->required();
  cmd->add_option("--epochs", o->epochs)->capture_default_str();
  cmd->add_option(t.batch_flag, o->batch, t.batch_help)->capture_default_str();
  cmd->add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o->min_lr, "final learning rate of the cosine schedule")->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--warmup-steps", o->warmup_steps, t.warmup_help)->capture_default_str();
  cmd->add_option("--clip-grad", o->clip_grad, "max global gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "weights, data order, augmentation, dropout")->capture_default_str();
  add_threads_option(cmd, &o->threads);
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "steps between checkpoints (epoch ends always save)")
      ->capture_default_str();
  cmd->add_flag("--resume", o->resume, "continue the run in --out from its last checkpoint");
  cmd->add_option("--limit-train", o->limit_train, std::string("use only the first N training ") + t.items)
      ->capture_default_str();
  cmd->add_option("--limit-test", o->limit_test, std::string("use only the first N test ") + t.items)
      ->capture_default_str();
  cmd->add_option("--max-steps", o->max_steps, "stop (with a checkpoint) after this many steps")
      ->capture_default_str();
}

int training_exit_code() {
  const int sig = stop_signal();
  return sig ? 128 + sig : 0;  // interrupted: the checkpoint is saved; the shell's convention
}

bool is_root_process() { return dist::world().rank() == 0; }

}  // namespace mmkit::cli
