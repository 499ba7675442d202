// `shears info`: version, instruction set, threads and the BLAS kernel set in use.
#include <cstdio>

#include "apps/commands.hpp"
#include "core/blas.hpp"
#include "core/version.hpp"

namespace shears::app {

Command add_info_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("info", "Show the build, the CPU features used and the BLAS library");
  return {cli, [] {
    blas::Info blas_info = blas::info();
    std::printf("shears %s\n", kVersion);
    std::printf("BLAS           %s\n", blas_info.library.c_str());
    std::printf("BLAS core      %s\n", blas_info.core.c_str());
    std::printf("BLAS coretype  %s\n",
                blas_info.coretype.empty()
                    ? "(OpenBLAS's own detection)"
                    : (blas_info.coretype + (blas_info.coretype_from_environment ? " (from OPENBLAS_CORETYPE)"
                                                                                 : " (chosen by shears for this CPU)"))
                          .c_str());
    std::printf("BLAS threads   %d\n", blas_info.threads);
    std::printf("BLAS config    %s\n", blas_info.config.c_str());
    return 0;
  }};
}

}  // namespace shears::app
