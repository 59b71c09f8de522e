// DynamicBatcher: batch formation, max-wait, routing of results to callers,
// errors, the bounded queue and the shared engine mutex. No wall-clock asserts:
// waits either end by batch size (long max_wait) or are only required to end.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "mmkit/serve/dynamic_batcher.h"

using mmkit::serve::BatcherOptions;
using mmkit::serve::DynamicBatcher;

TEST(DynamicBatcher, FullBatchesFormWithoutWaitingAndResultsGoToTheirCallers) {
  std::vector<size_t> seen_sizes;
  // max_wait of a minute: the batches below can only close by reaching max_batch.
  DynamicBatcher<int, int> b(
      [&](std::vector<int>& xs) {
        seen_sizes.push_back(xs.size());
        std::vector<int> out;
        for (int x : xs) out.push_back(x * 10 + 1);
        return out;
      },
      BatcherOptions{5, 60000, 100});
  std::vector<std::future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(b.submit(i));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fs[size_t(i)].get(), i * 10 + 1) << "item " << i;
  auto s = b.stats();
  EXPECT_EQ(s.batches, 2);
  EXPECT_EQ(s.items, 10);
  EXPECT_EQ(s.closed_full, 2);
  EXPECT_EQ(s.batch_sizes[5], 2);
  EXPECT_EQ(seen_sizes, (std::vector<size_t>{5, 5}));
}

TEST(DynamicBatcher, MaxWaitClosesAPartialBatch) {
  // max_batch 100 is never reached: the three items must be released by the deadline.
  DynamicBatcher<int, int> b([](std::vector<int>& xs) { return xs; }, BatcherOptions{100, 2, 100});
  auto f1 = b.submit(1), f2 = b.submit(2), f3 = b.submit(3);
  EXPECT_EQ(f1.get() + f2.get() + f3.get(), 6);
  auto s = b.stats();
  EXPECT_EQ(s.items, 3);
  EXPECT_EQ(s.closed_full, 0);
  EXPECT_GE(s.closed_deadline, 1);
  EXPECT_LE(s.batch_sizes.size(), 101u);
}

TEST(DynamicBatcher, ConcurrentCallersEachGetTheirOwnResult) {
  std::atomic<int64_t> max_seen{0};
  DynamicBatcher<std::pair<int, int>, std::pair<int, int>> b(
      [&](std::vector<std::pair<int, int>>& xs) {
        int64_t n = int64_t(xs.size());
        for (int64_t m = max_seen.load(); n > m && !max_seen.compare_exchange_weak(m, n);) {
        }
        std::vector<std::pair<int, int>> out;
        for (auto& x : xs) out.push_back({x.first, x.second * 3});
        return out;
      },
      BatcherOptions{7, 1, 1000});
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto r = b.submit({t, t * 1000 + i}).get();
        if (r.first != t || r.second != (t * 1000 + i) * 3) ++wrong;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
  auto s = b.stats();
  EXPECT_EQ(s.items, 400);
  EXPECT_LE(max_seen.load(), 7);
  int64_t total = 0;
  for (size_t n = 0; n < s.batch_sizes.size(); ++n) total += int64_t(n) * s.batch_sizes[n];
  EXPECT_EQ(total, 400);
}

TEST(DynamicBatcher, AnExceptionReachesEveryCallerOfTheBatch) {
  DynamicBatcher<int, int> b([](std::vector<int>&) -> std::vector<int> { throw std::runtime_error("model exploded"); },
                             BatcherOptions{2, 60000, 10});
  auto f1 = b.submit(1), f2 = b.submit(2);
  for (auto* f : {&f1, &f2}) {
    try {
      f->get();
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "model exploded");
    }
  }
  // A wrong result count is an error too, not a crash.
  DynamicBatcher<int, int> bad([](std::vector<int>&) { return std::vector<int>{}; }, BatcherOptions{1, 1, 10});
  EXPECT_THROW(bad.submit(1).get(), std::logic_error);
}

TEST(DynamicBatcher, TheQueueIsBounded) {
  std::mutex engine;
  std::unique_lock<std::mutex> hold(engine);  // the worker blocks on its first batch
  DynamicBatcher<int, int> b([](std::vector<int>& xs) { return xs; }, BatcherOptions{1, 0, 4}, &engine);
  std::vector<std::future<int>> fs;
  bool rejected = false;
  for (int i = 0; i < 10 && !rejected; ++i) {
    try {
      fs.push_back(b.submit(i));
    } catch (const mmkit::serve::QueueFull&) {
      rejected = true;
    }
  }
  EXPECT_TRUE(rejected);
  EXPECT_LE(fs.size(), 5u);  // 4 queued + at most 1 taken by the blocked worker
  hold.unlock();
  for (size_t i = 0; i < fs.size(); ++i) EXPECT_EQ(fs[i].get(), int(i));
}

TEST(DynamicBatcher, BatchersSharingAnEngineMutexNeverRunTogether) {
  std::mutex engine;
  std::atomic<int> running{0}, overlap{0};
  auto fn = [&](std::vector<int>& xs) {
    if (++running > 1) ++overlap;
    volatile double acc = 0;
    for (int i = 0; i < 20000; ++i) acc = acc + i;
    --running;
    return xs;
  };
  DynamicBatcher<int, int> a(fn, BatcherOptions{4, 1, 1000}, &engine), b(fn, BatcherOptions{4, 1, 1000}, &engine);
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) EXPECT_EQ((t % 2 ? a : b).submit(i).get(), i);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(overlap.load(), 0);
}
