// The few MPI collectives data-parallel training needs, behind an interface so that only
// dist/mpi.cpp includes <mpi.h>. The Makefile builds dist/mpi.cpp when it finds MPI (pkg-config
// mpi-c: Debian's libopenmpi-dev) and dist/no_mpi.cpp otherwise; the rest of shears is the same
// either way. Only the main thread calls these (MPI_THREAD_FUNNELED).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace shears::dist {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_size() const = 0;  // ranks sharing this machine's memory, this one included
  virtual void broadcast(float* data, int64_t count, int root) = 0;  // in place
  virtual void sum(float* data, int64_t count) = 0;                  // in place, over all ranks
  virtual void sum(double* data, int64_t count) = 0;
  virtual std::vector<uint64_t> all_gather(uint64_t value) = 0;  // one value per rank, by rank
};

// MPI_COMM_WORLD: initialises MPI; the backend's destructor finalises it. Throws shears::Error
// when shears was built without MPI.
std::unique_ptr<Backend> mpi_world();

bool built_with_mpi();

}  // namespace shears::dist
