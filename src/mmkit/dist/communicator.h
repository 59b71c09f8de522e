// Collective communication between the processes of one training job: the
// data-parallel training loop (train/train_loop.h) sums gradients and
// reduces its running sums through it, and CLIP's contrastive loss over the
// global batch gathers every rank's features (ag::clip_contrastive_loss_gathered).
//
//   mmkit::dist::Communicator& comm = mmkit::dist::world();
//   comm.allreduce_sum(grads, n);            // every rank ends with the sum
//   comm.allgather(local, n, all);           // all = [rank 0's n | rank 1's n | ...]
//
// world() is MPI's COMM_WORLD when the process was started by mpirun (Open
// MPI sets OMPI_COMM_WORLD_SIZE; PMIx launchers PMIX_RANK) and mmkit was built
// with MPI; otherwise it is a single process, whose collectives copy or do
// nothing. A failed collective (a peer process died, a network error) throws
// mmkit::Error naming this rank and the operation; mpirun then ends the job.
#pragma once
#include <cstdint>
#include <string>

namespace mmkit::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank's data[0..n) becomes the element-wise sum over ranks.
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // recv [size() * n]: rank r's send[0..n) at recv + r * n, on every rank.
  virtual void allgather(const float* send, int64_t n, float* recv) = 0;
  virtual void barrier() = 0;
  // "1 process" or "MPI: 2 processes (Open MPI v4.1.4)", for the run's summary line.
  virtual std::string describe() const = 0;
};

// The process's communicator (created on first use; MPI is finalised at exit).
Communicator& world();

// Whether this build can run data-parallel (linked with MPI).
bool built_with_mpi();

}  // namespace mmkit::dist
