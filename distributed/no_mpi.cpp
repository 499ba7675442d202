// dist::Backend when the build found no MPI: single-process training works as always, and asking
// for more processes says what to install.
#include "core/error.hpp"
#include "distributed/backend.hpp"

namespace shears::dist {

std::unique_ptr<Backend> mpi_world() {
  throw Error(
      "dist: shears was built without MPI, so it cannot train across processes. Hint: install libopenmpi-dev "
      "openmpi-bin (make deps does), then rebuild with make");
}

bool built_with_mpi() { return false; }

}  // namespace shears::dist
