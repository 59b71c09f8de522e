// The default OpenMP wait policy (core/parallel.h): which command lines may spin, and that a
// runnable task beside us makes the machine count as busy (so the policy falls back to passive).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "mmkit/core/parallel.h"

namespace {

const char* policy(std::vector<const char*> args, bool idle) {
  args.insert(args.begin(), "mmkit");
  return mmkit::default_wait_policy_for(int(args.size()), const_cast<char**>(args.data()), idle);
}

}  // namespace

TEST(WaitPolicy, ShortCommandsSpinOnlyWhenIdle) {
  EXPECT_STREQ(policy({"embed", "--model", "m", "--image", "a.png"}, true), "spin");
  EXPECT_STREQ(policy({"embed", "--model", "m", "--image", "a.png"}, false), "passive");
  EXPECT_STREQ(policy({"zero-shot", "--model", "m"}, true), "spin");
  EXPECT_STREQ(policy({}, true), "spin");
}

TEST(WaitPolicy, LongRunningAndFolderPipelinesStayPassive) {
  for (bool idle : {true, false}) {
    EXPECT_STREQ(policy({"serve", "--model", "m"}, idle), "passive");
    EXPECT_STREQ(policy({"train", "clip"}, idle), "passive");
    EXPECT_STREQ(policy({"index", "build"}, idle), "passive");
    EXPECT_STREQ(policy({"eval", "vit", "--model", "m"}, idle), "passive");
    EXPECT_STREQ(policy({"data", "shapes"}, idle), "passive");
    EXPECT_STREQ(policy({"embed", "--model", "m", "--images", "dir", "--out", "e.npy"}, idle), "passive");
    EXPECT_STREQ(policy({"embed", "--images=dir"}, idle), "passive");
  }
}

TEST(WaitPolicy, BusyThreadMakesTheMachineBusy) {
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  // The spinning thread is runnable in every sample (it may be descheduled for a moment on a
  // loaded machine, but then other tasks are running instead).
  const bool idle = mmkit::machine_looks_idle();
  stop = true;
  busy.join();
  EXPECT_FALSE(idle);
}
