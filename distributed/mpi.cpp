// dist::Backend on MPI (Open MPI from Debian's libopenmpi-dev). Built only when the Makefile
// finds MPI; dist/no_mpi.cpp stands in otherwise.
// The C API only: without these, Open MPI's and MPICH's mpi.h pull in their deprecated C++
// bindings, which need another library (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <string>

#include "core/error.hpp"
#include "distributed/backend.hpp"

namespace shears::dist {

namespace {

// MPI_COMM_WORLD returns errors (instead of aborting), so each call's failure becomes an Error.
void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(detail::concat("MPI: ", call, " failed: ", std::string(text, static_cast<size_t>(length))));
}

// MPI counts are ints; a larger message is sent in pieces.
template <class F>
void in_pieces(int64_t count, F f) {
  for (int64_t begin = 0; begin < count; begin += INT_MAX) f(begin, static_cast<int>(std::min<int64_t>(INT_MAX, count - begin)));
}

class MpiWorld final : public Backend {
 public:
  MpiWorld() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    SHEARS_CHECK(!initialized, "dist", "MPI is already initialised (one distributed communicator per process)");
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    SHEARS_CHECK(provided >= MPI_THREAD_FUNNELED, "dist", "the MPI library lacks MPI_THREAD_FUNNELED (got level ",
                 provided, "); shears' worker threads need it");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    MPI_Comm local;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    MPI_Comm_free(&local);
  }

  // During unwinding MPI is left unfinalised: MPI_Finalize would wait for ranks that may be blocked
  // in a collective this rank will never join, while a process exiting without it (non-zero
  // status) makes mpirun end the whole job.
  ~MpiWorld() override {
    if (std::uncaught_exceptions() == 0) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void broadcast(float* data, int64_t count, int root) override {
    in_pieces(count, [&](int64_t begin, int n) { check(MPI_Bcast(data + begin, n, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast"); });
  }
  void sum(float* data, int64_t count) override {
    in_pieces(count, [&](int64_t begin, int n) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + begin, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    });
  }
  void sum(double* data, int64_t count) override {
    in_pieces(count, [&](int64_t begin, int n) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + begin, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    });
  }
  std::vector<uint64_t> all_gather(uint64_t value) override {
    std::vector<uint64_t> out(static_cast<size_t>(size_));
    check(MPI_Allgather(&value, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    return out;
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Backend> mpi_world() { return std::make_unique<MpiWorld>(); }

bool built_with_mpi() { return true; }

}  // namespace shears::dist
