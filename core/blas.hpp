// OpenBLAS behind a small sgemm interface. OpenBLAS runs single-threaded: sgemm splits C into
// blocks across shears' own pool (core/parallel.hpp), so one set of threads does all the work and
// OpenBLAS's threads never spin against ours (measured: a third of the CPU time of a ResNet-20
// step went to their sched_yield loops).
// The library is loaded with dlopen on first use so
// that shears can choose its kernel set first: Debian's OpenBLAS 0.3.21 does not recognise
// recent Xeons and silently falls back to Prescott (SSE3) kernels, 3-7x slower. When
// OPENBLAS_CORETYPE is unset, shears sets it for the load from the CPU's features (SkylakeX
// with AVX-512, Haswell with AVX2) and restores the environment; a value already set is kept.
#pragma once
#include <cstdint>
#include <string>

namespace shears::blas {

// C (M,N) = alpha · op(A) · op(B) + beta · C, row-major; op(A) is (M,K), op(B) is (K,N).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The plain triple loop with double accumulation that sgemm is tested against.
void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

struct Info {
  std::string library;   // the shared object loaded
  std::string core;      // openblas_get_corename()
  std::string config;    // openblas_get_config()
  std::string coretype;  // OPENBLAS_CORETYPE in force at load, empty for OpenBLAS's own detection
  bool coretype_from_environment = false;
  int threads = 0;  // OpenBLAS's own (1: shears' pool does the threading)
};
Info info();  // loads the library if needed

}  // namespace shears::blas
