#include "mmkit/data/batcher.h"

#include <numeric>
#include <utility>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"

namespace mmkit::data {

Batcher::Batcher(int64_t n, int batch, uint64_t seed, bool shuffle, bool drop_last)
    : n_(n), batch_(batch), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
  MMKIT_CHECK(n >= 0, "Batcher: sample count must be >= 0, got ", n);
  MMKIT_CHECK(batch >= 1, "Batcher: batch size must be >= 1, got ", batch);
}

void Batcher::start_epoch(int epoch) {
  epoch_ = epoch;
  pos_ = 0;
  order_.resize(size_t(n_));
  std::iota(order_.begin(), order_.end(), int64_t(0));
  if (!shuffle_) return;
  Rng rng = Rng::derive(seed_, uint64_t(int64_t(epoch)));
  for (int64_t i = n_ - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[size_t(rng.randint(i + 1))]);
}

void Batcher::seek(int64_t batch_index) {
  if (epoch_ < 0 && order_.empty()) start_epoch(0);
  MMKIT_CHECK(batch_index >= 0 && batch_index <= batches_per_epoch(), "Batcher::seek: batch ", batch_index,
              " out of range [0, ", batches_per_epoch(), "]");
  pos_ = batch_index * batch_;
  if (pos_ > n_) pos_ = n_;
}

bool Batcher::next(std::vector<int64_t>* idx) {
  if (epoch_ < 0) start_epoch(0);
  idx->clear();
  int64_t left = n_ - pos_;
  if (left <= 0 || (drop_last_ && left < batch_)) {
    pos_ = n_;
    return false;
  }
  int64_t take = left < batch_ ? left : batch_;
  idx->assign(order_.begin() + pos_, order_.begin() + pos_ + take);
  pos_ += take;
  return true;
}

int64_t Batcher::batches_per_epoch() const {
  return drop_last_ ? n_ / batch_ : (n_ + batch_ - 1) / batch_;
}

}  // namespace mmkit::data
