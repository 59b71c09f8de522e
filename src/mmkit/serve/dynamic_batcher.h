// Dynamic batching for a server: many request threads submit single items,
// one worker thread runs the model on batches of them.
//
//   mmkit::serve::DynamicBatcher<Ids, Embedding> text(
//       [&](std::vector<Ids>& batch) { return run_text_tower(batch); },   // returns one Out per In
//       {/*max_batch=*/32, /*max_wait_ms=*/5});
//   Embedding e = text.submit(ids).get();                                // blocks this request thread
//
// Batch formation: the worker waits for a first item, then keeps collecting
// until the batch has max_batch items or max_wait_ms have passed since that
// first item was queued, whichever comes first. Items are taken in arrival
// order and results go back through each item's own promise, so a caller
// always receives the output computed from its own input. If the batch
// function throws, every caller of that batch gets the exception.
//
// `exclusive` (optional) is a mutex held around each batch run: several
// batchers (text tower, image tower) share one so only one forward runs at a
// time and each gets all cores (OpenMP) instead of splitting them.
//
// The queue is bounded (max_queue): submit() throws QueueFull beyond it, so
// memory stays bounded under overload and the server answers 503.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mmkit::serve {

struct BatcherOptions {
  int max_batch = 32;
  double max_wait_ms = 5;
  size_t max_queue = 1024;
};

struct BatcherStats {
  int64_t batches = 0, items = 0;
  int64_t closed_full = 0;      // batches that reached max_batch
  int64_t closed_deadline = 0;  // batches closed by max_wait (or by shutdown)
  std::vector<int64_t> batch_sizes;  // [max_batch + 1]: how many batches had each size
};

struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class In, class Out>
class DynamicBatcher {
 public:
  using RunFn = std::function<std::vector<Out>(std::vector<In>&)>;

  DynamicBatcher(RunFn run, BatcherOptions opt = {}, std::mutex* exclusive = nullptr)
      : run_(std::move(run)), opt_(opt), exclusive_(exclusive) {
    if (opt_.max_batch < 1) opt_.max_batch = 1;
    stats_.batch_sizes.assign(size_t(opt_.max_batch) + 1, 0);
    worker_ = std::thread([this] { loop(); });
  }
  ~DynamicBatcher() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();  // the worker finishes what is queued first
  }
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  std::future<Out> submit(In x) {
    Item it{std::move(x), std::promise<Out>(), Clock::now()};
    std::future<Out> f = it.promise.get_future();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) throw std::runtime_error("batcher is shutting down");
      if (queue_.size() >= opt_.max_queue) throw QueueFull("request queue is full");
      queue_.push_back(std::move(it));
    }
    cv_.notify_all();
    return f;
  }

  BatcherStats stats() const {
    std::lock_guard<std::mutex> l(mu_);
    return stats_;
  }
  size_t queued() const {
    std::lock_guard<std::mutex> l(mu_);
    return queue_.size();
  }
  const BatcherOptions& options() const { return opt_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    In in;
    std::promise<Out> promise;
    Clock::time_point queued;
  };

  void loop() {
    for (;;) {
      std::vector<Item> batch;
      bool full = false;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and nothing left
        const auto deadline = queue_.front().queued +
                              std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double, std::milli>(opt_.max_wait_ms));
        cv_.wait_until(l, deadline, [&] { return stop_ || int(queue_.size()) >= opt_.max_batch; });
        const size_t n = std::min(queue_.size(), size_t(opt_.max_batch));
        full = int(n) == opt_.max_batch;
        for (size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        ++stats_.batches;
        stats_.items += int64_t(n);
        ++(full ? stats_.closed_full : stats_.closed_deadline);
        ++stats_.batch_sizes[n];
      }
      run_batch(batch);
    }
  }

  void run_batch(std::vector<Item>& batch) {
    std::vector<In> ins;
    ins.reserve(batch.size());
    for (Item& it : batch) ins.push_back(std::move(it.in));
    try {
      std::vector<Out> outs;
      {
        std::unique_lock<std::mutex> ex;
        if (exclusive_) ex = std::unique_lock<std::mutex>(*exclusive_);
        outs = run_(ins);
      }
      if (outs.size() != batch.size())
        throw std::logic_error("batch function returned " + std::to_string(outs.size()) + " results for " +
                               std::to_string(batch.size()) + " inputs");
      for (size_t i = 0; i < batch.size(); ++i) batch[i].promise.set_value(std::move(outs[i]));
    } catch (...) {
      for (Item& it : batch) it.promise.set_exception(std::current_exception());
    }
  }

  RunFn run_;
  BatcherOptions opt_;
  std::mutex* exclusive_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  BatcherStats stats_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace mmkit::serve
