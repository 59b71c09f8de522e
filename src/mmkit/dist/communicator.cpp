#include "mmkit/dist/communicator.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "mmkit/core/error.h"

#ifdef MMKIT_USE_MPI
#include <mpi.h>
#endif

namespace mmkit::dist {

namespace {

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allgather(const float* send, int64_t n, float* recv) override {
    if (recv != send) std::memmove(recv, send, size_t(n) * sizeof(float));
  }
  void barrier() override {}
  std::string describe() const override { return "1 process"; }
};

#ifdef MMKIT_USE_MPI

// MPI counts are int: larger buffers go in pieces of at most 2^30 elements.
constexpr int64_t kChunk = int64_t(1) << 30;

class Mpi : public Communicator {
 public:
  Mpi() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      // Only the training loop's thread calls MPI (OpenMP threads never do).
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit([] {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
      });
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    version_.assign(v, size_t(len));
    if (size_t nl = version_.find_first_of(",\n"); nl != std::string::npos) version_.resize(nl);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override { allreduce(data, n, MPI_FLOAT, "allreduce (float)"); }
  void allreduce_sum(double* data, int64_t n) override { allreduce(data, n, MPI_DOUBLE, "allreduce (double)"); }
  void allgather(const float* send, int64_t n, float* recv) override {
    MMKIT_CHECK(n <= kChunk, "allgather of ", n, " floats per rank is more than MPI can count");
    check(MPI_Allgather(send, int(n), MPI_FLOAT, recv, int(n), MPI_FLOAT, MPI_COMM_WORLD), "allgather");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }
  std::string describe() const override {
    return "MPI: " + std::to_string(size_) + " processes (" + version_ + ")";
  }

 private:
  void allreduce(void* data, int64_t n, MPI_Datatype t, const char* what) {
    int bytes = 0;
    MPI_Type_size(t, &bytes);
    for (int64_t i = 0; i < n; i += kChunk)
      check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + i * bytes, int(std::min(kChunk, n - i)), t,
                          MPI_SUM, MPI_COMM_WORLD),
            what);
  }
  void check(int rc, const char* what) const {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail("rank ", rank_, " of ", size_, ": MPI ", what, " failed (", std::string(msg, size_t(len)),
         "); another process of the job has probably died");
  }
  int rank_ = 0, size_ = 1;
  std::string version_;
};

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_SIZE");
}

#endif

}  // namespace

Communicator& world() {
  static std::unique_ptr<Communicator> comm = []() -> std::unique_ptr<Communicator> {
#ifdef MMKIT_USE_MPI
    if (launched_by_mpirun()) return std::make_unique<Mpi>();
#endif
    return std::make_unique<SingleProcess>();
  }();
  return *comm;
}

bool built_with_mpi() {
#ifdef MMKIT_USE_MPI
  return true;
#else
  return false;
#endif
}

}  // namespace mmkit::dist
