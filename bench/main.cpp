// The benchmark runner: prints what the figures depend on (ISA, threads, BLAS core), then runs
// Google Benchmark. SHEARS_ISA and SHEARS_NUM_THREADS select the configuration.
#include <benchmark/benchmark.h>

#include <cstdio>

#include "core/blas.hpp"
#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  shears::blas::Info blas = shears::blas::info();
  std::printf("shears %s | ISA %s | threads %d | BLAS %s core %s (%s)\n", shears::kVersion,
              shears::kernels::isa_name(shears::kernels::kernels().isa), shears::num_threads(), blas.library.c_str(),
              blas.core.c_str(),
              blas.coretype_from_environment ? "OPENBLAS_CORETYPE from the environment"
                                             : (blas.coretype.empty() ? "OpenBLAS's detection" : "chosen by shears"));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
