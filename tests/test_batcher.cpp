// Deterministic batcher, the Rng it relies on, and the crop/flip augmentation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/augment.h"
#include "mmkit/data/batcher.h"

using mmkit::data::Batcher;

namespace {

std::vector<int64_t> epoch_order(Batcher& b, int epoch, std::vector<size_t>* sizes = nullptr) {
  b.start_epoch(epoch);
  std::vector<int64_t> all, idx;
  while (b.next(&idx)) {
    if (sizes) sizes->push_back(idx.size());
    all.insert(all.end(), idx.begin(), idx.end());
  }
  return all;
}

}  // namespace

TEST(Batcher, IsPermutation) {
  Batcher b(1000, 64, 7, true, false);
  std::vector<size_t> sizes;
  auto order = epoch_order(b, 0, &sizes);
  ASSERT_EQ(order.size(), 1000u);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i) << "missing or duplicated index near " << i;
  EXPECT_EQ(b.batches_per_epoch(), 16);
  ASSERT_EQ(sizes.size(), 16u);
  EXPECT_EQ(sizes.back(), 1000u - 15 * 64);
  // A shuffled order is not the identity (probability of failure ~ 1/1000!).
  std::vector<int64_t> ident(1000);
  std::iota(ident.begin(), ident.end(), 0);
  EXPECT_NE(order, ident);
}

TEST(Batcher, DeterministicPerSeedAndEpoch) {
  Batcher a(500, 32, 123, true, false), b(500, 32, 123, true, false), c(500, 32, 124, true, false);
  auto a3 = epoch_order(a, 3);
  // b visits other epochs first: order must depend only on (seed, epoch).
  epoch_order(b, 0);
  epoch_order(b, 7);
  EXPECT_EQ(epoch_order(b, 3), a3);
  EXPECT_NE(epoch_order(a, 4), a3);
  EXPECT_NE(epoch_order(c, 3), a3);
}

TEST(Batcher, SeekResumesMidEpoch) {
  Batcher a(300, 25, 9, true, true);
  auto full = epoch_order(a, 2);
  Batcher b(300, 25, 9, true, true);
  b.start_epoch(2);
  b.seek(5);
  std::vector<int64_t> rest, idx;
  while (b.next(&idx)) rest.insert(rest.end(), idx.begin(), idx.end());
  EXPECT_EQ(rest, std::vector<int64_t>(full.begin() + 5 * 25, full.end()));
  EXPECT_THROW(b.seek(13), mmkit::Error);
}

TEST(Batcher, DropLast) {
  Batcher b(103, 10, 1, true, true);
  EXPECT_EQ(b.batches_per_epoch(), 10);
  std::vector<size_t> sizes;
  auto order = epoch_order(b, 0, &sizes);
  EXPECT_EQ(order.size(), 100u);
  for (size_t s : sizes) EXPECT_EQ(s, 10u);
  std::set<int64_t> uniq(order.begin(), order.end());
  EXPECT_EQ(uniq.size(), 100u);

  Batcher small(7, 10, 1, true, true);  // fewer samples than one batch
  EXPECT_EQ(small.batches_per_epoch(), 0);
  EXPECT_TRUE(epoch_order(small, 0).empty());
  Batcher keep(7, 10, 1, true, false);
  EXPECT_EQ(keep.batches_per_epoch(), 1);
  EXPECT_EQ(epoch_order(keep, 0).size(), 7u);
}

TEST(Batcher, NoShuffleIsSequential) {
  Batcher b(10, 4, 5, false, false);
  auto order = epoch_order(b, 3);
  std::vector<int64_t> ident(10);
  std::iota(ident.begin(), ident.end(), 0);
  EXPECT_EQ(order, ident);
}

TEST(Batcher, RejectsBadArguments) {
  EXPECT_THROW(Batcher(10, 0, 1, true, false), mmkit::Error);
  EXPECT_THROW(Batcher(-1, 4, 1, true, false), mmkit::Error);
  Batcher empty(0, 4, 1, true, false);
  std::vector<int64_t> idx;
  empty.start_epoch(0);
  EXPECT_FALSE(empty.next(&idx));
}

TEST(Rng, UniformNormalRandint) {
  mmkit::Rng r(42);
  const int n = 200000;
  double s = 0, s2 = 0;
  float umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    float u = r.uniform();
    umin = std::min(umin, u);
    umax = std::max(umax, u);
    s += u;
  }
  EXPECT_GE(umin, 0.0f);
  EXPECT_LT(umax, 1.0f);
  EXPECT_NEAR(s / n, 0.5, 0.005);
  s = 0;
  for (int i = 0; i < n; ++i) {
    double z = r.normal();
    ASSERT_TRUE(std::isfinite(z));
    s += z;
    s2 += z * z;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) {
    int64_t k = r.randint(7);
    ASSERT_TRUE(k >= 0 && k < 7) << k;
    hist[size_t(k)]++;
  }
  for (int k = 0; k < 7; ++k) EXPECT_NEAR(hist[size_t(k)], 10000, 400) << "bucket " << k;
  mmkit::Rng a(5), b(5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Augment, ShiftFlipExact) {
  // 3x4 image with distinct values.
  const uint8_t src[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t dst[12];
  mmkit::data::shift_flip(src, 3, 4, 1, 0, false, dst);  // dst(x) = src(x+1)
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 12), (std::vector<uint8_t>{2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0}));
  mmkit::data::shift_flip(src, 3, 4, -1, 1, false, dst);
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 12), (std::vector<uint8_t>{0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0}));
  mmkit::data::shift_flip(src, 3, 4, 0, 0, true, dst);
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 12), (std::vector<uint8_t>{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}));
  mmkit::data::shift_flip(src, 3, 4, 5, 0, false, dst);  // shifted out entirely
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 12), std::vector<uint8_t>(12, 0));
}

TEST(Augment, RandomCropFlipIsReproducibleAndVaried) {
  std::vector<uint8_t> src(28 * 28);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(1 + i % 250);
  std::vector<uint8_t> a(src.size()), b(src.size());
  mmkit::data::augment_random_crop_flip(src.data(), 28, 28, 0, false, 99, a.data());
  EXPECT_EQ(a, src);  // no pad, no flip: identity
  std::set<std::vector<uint8_t>> seen;
  for (uint64_t s = 0; s < 64; ++s) {
    mmkit::data::augment_random_crop_flip(src.data(), 28, 28, 2, true, s, a.data());
    mmkit::data::augment_random_crop_flip(src.data(), 28, 28, 2, true, s, b.data());
    ASSERT_EQ(a, b) << "seed " << s;
    // Every output pixel is either zero fill or some source pixel value.
    int zeros = int(std::count(a.begin(), a.end(), 0));
    EXPECT_LE(zeros, 2 * 28 * 2 + 2 * 28 * 2) << "seed " << s;
    seen.insert(a);
  }
  EXPECT_GT(seen.size(), 20u);  // 25 shifts x 2 flips available
}
