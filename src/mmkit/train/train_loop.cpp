#include "mmkit/train/train_loop.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <memory>

#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/batcher.h"
#include "mmkit/dist/communicator.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/layouts.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"
#include "mmkit/util/stop_signal.h"

namespace mmkit::train {

void backward_and_update(Graph& g, Var loss, AdamW& opt, float lr, float clip_grad) {
  g.backward(loss);
  // Clipping and zeroing fused into AdamW's one pass over the gradients
  // (a separate zero_grad pass would rewrite every gradient again).
  opt.step(lr, clip_grad > 0 ? clip_scale(grad_norm(opt.params()), clip_grad) : 1.f, /*zero_grads=*/true);
}

// Buckets instead of one all-reduce per tensor: ViT-B/32 CLIP has ~200
// tensors, many tiny, and each collective has a fixed latency.
void allreduce_gradients(dist::Communicator& comm, const nn::ParamList& params, float scale, std::vector<float>* buf,
                         double* comm_seconds) {
  constexpr int64_t kBucket = int64_t(1) << 22;  // 16 MB
  std::vector<Parameter*> ps;
  for (Parameter* p : params)
    if (p->trainable && p->grad.defined()) ps.push_back(p);
  size_t k = 0;
  while (k < ps.size()) {
    // Parameters [k, e) fill this bucket (a tensor larger than a bucket goes alone).
    size_t e = k;
    int64_t n = 0;
    while (e < ps.size() && (e == k || n + ps[e]->grad.numel() <= kBucket)) n += ps[e++]->grad.numel();
    buf->resize(size_t(n));
    float* b = buf->data();
    for (size_t q = k; q < e; ++q) {
      const float* gr = ps[q]->grad.f32();
      const int64_t m = ps[q]->grad.numel();
      for (int64_t i = 0; i < m; ++i) b[i] = gr[i] * scale;
      b += m;
    }
    const auto t0 = std::chrono::steady_clock::now();
    comm.allreduce_sum(buf->data(), n);
    *comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    b = buf->data();
    for (size_t q = k; q < e; ++q) {
      std::copy(b, b + ps[q]->grad.numel(), ps[q]->grad.f32());
      b += ps[q]->grad.numel();
    }
    k = e;
  }
}

namespace {

std::string state_json(const RunState& s, const TrainTask& task, const TrainTask::Info& info, const TrainOptions& o) {
  nlohmann::json j = run_state_json(s, info.weight_field, info.metric_field);
  nlohmann::json opts = {{"epochs", o.epochs},
                         {"batch", o.batch},
                         {"lr", o.lr},
                         {"min_lr", o.min_lr},
                         {"weight_decay", o.weight_decay},
                         {"warmup_steps", o.warmup_steps},
                         {"clip_grad", o.clip_grad},
                         {"seed", o.seed},
                         {"limit_train", o.limit_train},
                         {"limit_test", o.limit_test},
                         {"precision", o.precision}};
  opts.update(task.options_json());
  j["options"] = opts;
  task.save_state(&j);
  return j.dump();
}

void check_options(const TrainTask::Info& info, const TrainOptions& o) {
  MMKIT_CHECK(!o.out_dir.empty(), "no output directory given (--out DIR)");
  MMKIT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  MMKIT_CHECK(o.batch >= info.min_batch && o.batch <= info.max_batch, info.batch_flag, " must be in ", info.min_batch,
              "..", info.max_batch, info.batch_why, ", got ", o.batch);
  MMKIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number");
  MMKIT_CHECK(o.min_lr >= 0 && std::isfinite(o.min_lr), "--min-lr must be a non-negative number");
  try {
    parse_precision(o.precision);
  } catch (const Error& e) {
    fail("--precision: ", e.what());
  }
}

// Where output of the ranks other than 0 goes.
std::FILE* null_log() {
  static std::FILE* f = std::fopen("/dev/null", "w");
  return f ? f : stderr;
}

// OUT/losses.tsv: "step<TAB>loss<TAB>lr" per optimizer step (rank 0), for
// plotting and for comparing runs step by step. On resume, the lines of the
// steps after the checkpoint (written before a kill) are dropped.
class StepLog {
 public:
  StepLog(const std::string& path, int64_t resume_step) : path_(path) {
    std::string kept;
    if (resume_step > 0) {
      std::string text = io::read_text_file(path);
      size_t pos = 0;
      while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) break;  // a torn last line
        if (std::strtoll(text.c_str() + pos, nullptr, 10) < resume_step) kept.append(text, pos, nl + 1 - pos);
        pos = nl + 1;
      }
    }
    write_text_atomic(path, kept);
    f_ = std::fopen(path.c_str(), "a");
  }
  ~StepLog() {
    if (f_) std::fclose(f_);
  }
  void add(int64_t step, double loss, float lr) {
    if (f_) std::fprintf(f_, "%lld\t%.9g\t%.6g\n", (long long)step, loss, double(lr));
  }
  void flush() {
    if (f_) std::fflush(f_);
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace

std::vector<nlohmann::json> run_training(TrainTask& task, const TrainOptions& o, std::FILE* user_log) {
  const TrainTask::Info info = task.info();
  check_options(info, o);
  dist::Communicator& comm = dist::world();
  const int ranks = comm.size();
  const bool root = comm.rank() == 0;
  std::FILE* log = root ? user_log : null_log();
  MMKIT_CHECK(o.batch % ranks == 0, info.batch_flag, " ", o.batch, " is the global batch; it must be divisible by the ",
              ranks, " processes");
  const int64_t rows = o.batch / ranks, row0 = comm.rank() * rows;
  set_num_threads(o.threads);
  try {
    if (root) make_dirs(o.out_dir);
  } catch (const Error& e) {
    fail("cannot use output directory ", o.out_dir, ": ", e.what());
  }
  comm.barrier();  // the directory exists for every rank
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  if (!o.resume && path_exists(ckpt))
    fail(o.out_dir, " already holds a training run (checkpoint.safetensors); pass --resume to continue it or choose another --out");
  const bool resumed = o.resume && path_exists(ckpt);

  RunState st;
  std::unique_ptr<io::SafetensorsFile> ck;
  if (resumed) {
    ck = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ckpt));
    const auto& meta = ck->metadata();
    MMKIT_CHECK(meta.count("config") && meta.count("train_state"), ckpt,
                ": missing config/train_state metadata; not an mmkit ", info.name, " training checkpoint");
    TrainStateReader r(meta.at("train_state"), ckpt);
    st = read_run_state(r, info.weight_field, info.metric_field);
    task.load_state(r);
  }
  task.setup(ck.get(), log);
  nn::ParamList params = task.parameters();
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  AdamW opt(params, ac);
  if (resumed) {
    resume_from_checkpoint(*ck, params, opt, st.step);
    ck.reset();
    std::fprintf(log, "resuming %s at epoch %d, step %lld\n", o.out_dir.c_str(), st.epoch + 1, (long long)st.step);
  }

  const int64_t n_train = task.train_size();
  data::Batcher batcher(n_train, o.batch, o.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t steps_per_epoch = batcher.batches_per_epoch();
  MMKIT_CHECK(steps_per_epoch > 0, "training set of ", n_train, " items is smaller than one batch of ", o.batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : task.default_warmup(steps_per_epoch);
  {
    RunShape s;
    s.steps_per_epoch = steps_per_epoch;
    s.epochs = o.epochs;
    s.batch = o.batch;
    s.threads = num_threads();
    for (Parameter* p : params) {
      s.parameters += p->value.numel();
      if (p->trainable) s.trainable += p->value.numel();
    }
    task.describe(log, s);
    if (ranks > 1)
      std::fprintf(log, "data-parallel: %s, %lld rows of each batch of %d per process, %d thread%s each\n",
                   comm.describe().c_str(), (long long)rows, o.batch, s.threads, s.threads == 1 ? "" : "s");
    std::fflush(log);
  }

  auto save = [&] {
    if (!root) return;
    std::map<std::string, std::string> meta = {
        {"config", task.config_json()}, {"train_state", state_json(st, task, info, o)}, {"format", info.format}};
    task.checkpoint_metadata(&meta);
    io::save_parameters(ckpt, params, meta, optimizer_tensors(opt));
    task.save_model(o.out_dir + "/model.safetensors");
  };
  auto write_history = [&] {
    if (!root) return;
    std::vector<EpochPoint> pts;
    for (const auto& r : st.history) pts.push_back(task.curve_point(r));
    write_history_files(o.out_dir, nlohmann::json(st.history), pts, task.curve_title());
  };
  std::unique_ptr<StepLog> step_log;
  if (root) step_log = std::make_unique<StepLog>(o.out_dir + "/losses.tsv", resumed ? st.step : 0);

  StopSignalScope signals;
  // A stop is decided together: any rank's signal stops every rank at the same step.
  auto stop_requested = [&] {
    double s = stop_signal() != 0;
    comm.allreduce_sum(&s, 1);
    return s > 0 || (o.max_steps > 0 && st.step >= o.max_steps);
  };
  Arena arena;
  Graph g(arena);
  g.training = true;
  g.precision = parse_precision(o.precision);  // the evaluation hooks run their own f32 graphs
  std::vector<int64_t> idx, next_idx;
  std::vector<float> bucket;
  double comm_seconds = 0;
  for (int epoch = st.epoch; epoch < o.epochs; ++epoch) {
    batcher.start_epoch(epoch);
    if (st.batch_in_epoch > 0) batcher.seek(st.batch_in_epoch);
    ProgressOptions po;
    po.unit = info.unit;
    if (!root) po.mode = ProgressMode::off;
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), steps_per_epoch * o.batch,
                 stderr, po);
    const auto t_epoch = std::chrono::steady_clock::now();
    const double seconds_before = st.epoch_seconds;
    bool have = batcher.next(&idx);
    if (have) task.prefetch(idx, row0, rows, st.step);
    while (have) {
      task.load_batch(idx, row0, rows, epoch, st.step);
      const bool more = batcher.next(&next_idx);
      if (more) task.prefetch(next_idx, row0, rows, st.step + 1);
      const float lr = warmup_cosine_lr(st.step, warmup, total_steps, o.lr, o.min_lr);
      g.reset();
      g.seed = mix64(o.seed * 7919 + uint64_t(st.step));
      g.batch_row0 = row0;
      g.batch_rows = rows;
      const StepOutput out = task.forward(g, epoch, st.step);
      // This rank's loss x weight, weight and metric, summed over the ranks.
      double sums[3] = {out.loss.valid() ? double(g.data(out.loss)[0]) * out.weight : 0.0,
                        out.loss.valid() ? out.weight : 0.0, out.loss.valid() ? out.metric : 0.0};
      if (ranks > 1) comm.allreduce_sum(sums, 3);
      double step_loss = NAN;
      if (sums[1] > 0) {
        step_loss = sums[0] / sums[1];
        const float lv = ranks > 1 ? float(step_loss) : g.data(out.loss)[0];
        MMKIT_CHECK(std::isfinite(lv), "training diverged: loss is ", lv, " at step ", st.step, " (try a lower --lr)");
        if (ranks == 1) {
          backward_and_update(g, out.loss, opt, lr, o.clip_grad);
        } else {
          if (out.loss.valid()) g.backward(out.loss);
          allreduce_gradients(comm, params, out.loss.valid() ? float(out.weight / sums[1]) : 0.f, &bucket, &comm_seconds);
          opt.step(lr, o.clip_grad > 0 ? clip_scale(grad_norm(opt.params()), o.clip_grad) : 1.f, /*zero_grads=*/true);
        }
        task.after_update(lv);
        st.loss_sum += ranks > 1 ? sums[0] : double(lv) * out.weight;
        st.weight += sums[1];
        st.metric += sums[2];
      }
      if (step_log) step_log->add(st.step, step_loss, lr);
      ++st.step;
      ++st.batch_in_epoch;
      st.epoch_seconds =
          seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      char extra[128];
      const double w = st.weight > 0 ? st.weight : 1;
      std::snprintf(extra, sizeof extra, "loss %.4f acc %.3f%s lr %.2e", st.loss_sum / w, st.metric / w,
                    task.progress_extra().c_str(), lr);
      bar.update(st.batch_in_epoch * o.batch, extra);
      const bool stop = stop_requested();
      const bool epoch_done = st.batch_in_epoch == steps_per_epoch;
      if (!epoch_done && (stop || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0))) {
        if (step_log) step_log->flush();
        save();
      }
      if (stop && !epoch_done) {
        bar.finish("stopped");
        std::fprintf(log, "%s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                     stop_signal() ? "interrupted" : "stopped", (long long)st.step, o.out_dir.c_str());
        return st.history;
      }
      std::swap(idx, next_idx);
      have = more;
    }
    bar.finish();
    EpochStats s;
    s.epoch = epoch + 1;
    s.epochs = o.epochs;
    s.weight = st.weight;
    s.train_loss = st.loss_sum / (st.weight > 0 ? st.weight : 1);
    s.train_metric = st.metric / (st.weight > 0 ? st.weight : 1);
    s.seconds = st.epoch_seconds;
    s.items = steps_per_epoch * o.batch;
    nlohmann::json rec = task.end_epoch(s, log);
    if (ranks > 1) {
      rec["comm_seconds"] = comm_seconds;  // gradient all-reduce time of this rank (rank 0's is recorded)
      comm_seconds = 0;
    }
    st.history.push_back(rec);
    std::fflush(log);
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.loss_sum = st.weight = st.metric = 0;
    st.epoch_seconds = 0;
    if (step_log) step_log->flush();
    save();
    write_history();
    if (stop_requested()) {
      std::fprintf(log, "stopped after epoch %d; checkpoint saved in %s\n", epoch + 1, o.out_dir.c_str());
      return st.history;
    }
  }
  return st.history;
}

}  // namespace mmkit::train
