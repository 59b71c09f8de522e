// Deterministic shuffling and batching of sample indices.
//
// The permutation of an epoch is a pure function of (seed, epoch), so a run
// resumed from a checkpoint at epoch e (and batch b, via seek) visits exactly
// the samples the uninterrupted run would have.
//
//   mmkit::data::Batcher b(train.n, 128, /*seed=*/1, /*shuffle=*/true, /*drop_last=*/true);
//   for (int e = 0; e < epochs; ++e) {
//     b.start_epoch(e);
//     std::vector<int64_t> idx;
//     while (b.next(&idx)) { /* idx.size() == 128 */ }
//   }
#pragma once
#include <cstdint>
#include <vector>

namespace mmkit::data {

class Batcher {
 public:
  // n samples, batch >= 1. drop_last drops the final short batch (n % batch
  // samples) so every step sees the same batch size.
  Batcher(int64_t n, int batch, uint64_t seed, bool shuffle, bool drop_last);

  // Builds the epoch's order (Fisher-Yates from Rng::derive(seed, epoch)) and
  // rewinds to its first batch.
  void start_epoch(int epoch);

  // Positions the current epoch at batch `batch_index` (0..batches_per_epoch()),
  // for resuming mid-epoch.
  void seek(int64_t batch_index);

  // Fills *idx with the next batch's sample indices; false when the epoch is
  // exhausted (idx is then cleared). Calling before start_epoch starts epoch 0.
  bool next(std::vector<int64_t>* idx);

  int64_t batches_per_epoch() const;
  int64_t size() const { return n_; }
  int batch_size() const { return batch_; }
  int epoch() const { return epoch_; }
  // The current epoch's full order (n indices).
  const std::vector<int64_t>& order() const { return order_; }

 private:
  int64_t n_;
  int batch_;
  uint64_t seed_;
  bool shuffle_, drop_last_;
  int epoch_ = -1;
  int64_t pos_ = 0;  // next sample position within order_
  std::vector<int64_t> order_;
};

}  // namespace mmkit::data
