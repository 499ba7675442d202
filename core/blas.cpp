#include "core/blas.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "core/error.hpp"
#include "core/parallel.hpp"

namespace shears::blas {

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS enum values
constexpr const char* kLibrary = "libopenblas.so.0";

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                         float*, int);
using CharFn = char* (*)();
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

struct Library {
  SgemmFn sgemm = nullptr;
  CharFn corename = nullptr;
  CharFn config = nullptr;
  SetThreadsFn set_threads = nullptr;
  GetThreadsFn get_threads = nullptr;
  std::string coretype;
  bool coretype_from_environment = false;
};

// The kernel set OpenBLAS should use on this CPU when the user has not chosen one.
const char* preferred_coretype() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

template <typename Fn>
Fn symbol(void* handle, const char* name) {
  void* p = dlsym(handle, name);
  SHEARS_CHECK(p != nullptr, "OpenBLAS", "symbol ", name, " missing from ", kLibrary);
  return reinterpret_cast<Fn>(p);
}

Library load() {
  Library lib;
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  bool chosen_here = false;
  if (env && *env) {
    lib.coretype = env;
    lib.coretype_from_environment = true;
  } else if (const char* preferred = preferred_coretype()) {
    lib.coretype = preferred;
    setenv("OPENBLAS_CORETYPE", preferred, 1);  // read by OpenBLAS's constructor during dlopen
    chosen_here = true;
  }
  void* handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (chosen_here) unsetenv("OPENBLAS_CORETYPE");
  SHEARS_CHECK(handle != nullptr, "OpenBLAS", "cannot load ", kLibrary, " (", dlerror(),
               "); install it with `make deps` (Debian package libopenblas0)");
  lib.sgemm = symbol<SgemmFn>(handle, "cblas_sgemm");
  lib.corename = symbol<CharFn>(handle, "openblas_get_corename");
  lib.config = symbol<CharFn>(handle, "openblas_get_config");
  lib.set_threads = symbol<SetThreadsFn>(handle, "openblas_set_num_threads");
  lib.get_threads = symbol<GetThreadsFn>(handle, "openblas_get_num_threads");
  lib.set_threads(1);  // shears' pool splits every sgemm; OpenBLAS's own threads would spin against it
  return lib;
}

const Library& library() {
  static const Library lib = load();
  return lib;
}

int checked_int(int64_t v, const char* what) {
  SHEARS_CHECK(v >= 0 && v <= INT32_MAX, "sgemm", what, " = ", v, " exceeds the 32-bit BLAS interface");
  return static_cast<int>(v);
}

// One single-threaded OpenBLAS call.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  library().sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, checked_int(M, "M"),
                  checked_int(N, "N"), checked_int(K, "K"), alpha, A, checked_int(lda, "lda"), B,
                  checked_int(ldb, "ldb"), beta, C, checked_int(ldc, "ldc"));
}

}  // namespace

// Splits C into column blocks (or row blocks when C is tall and narrow), one per thread of the
// pool, each computed by a single-threaded sgemm: C[:, j0:j1] = op(A) · op(B)[:, j0:j1].
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  constexpr int64_t kMinWork = int64_t{1} << 21;  // multiply-adds below which one thread is faster
  int64_t threads = in_parallel_region() || M * N * K < kMinWork ? 1 : num_threads();
  if (threads <= 1) return sgemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  constexpr int64_t kAlign = 16;  // keep blocks a multiple of the micro-kernel's width
  if (N >= M || N >= threads * 64) {
    int64_t blocks = (N + kAlign - 1) / kAlign;
    parallel_for(threads, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t j0 = std::min(N, blocks * t / threads * kAlign), j1 = std::min(N, blocks * (t + 1) / threads * kAlign);
        if (j0 < j1)
          sgemm_serial(trans_a, trans_b, M, j1 - j0, K, alpha, A, lda, trans_b ? B + j0 * ldb : B + j0, ldb, beta,
                       C + j0, ldc);
      }
    });
  } else {
    int64_t blocks = (M + kAlign - 1) / kAlign;
    parallel_for(threads, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t i0 = std::min(M, blocks * t / threads * kAlign), i1 = std::min(M, blocks * (t + 1) / threads * kAlign);
        if (i0 < i1)
          sgemm_serial(trans_a, trans_b, i1 - i0, N, K, alpha, trans_a ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
                       C + i0 * ldc, ldc);
      }
    });
  }
}

void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float prior = beta == 0.f ? 0.f : beta * C[i * ldc + j];  // beta = 0 ignores NaNs in C, as BLAS does
      C[i * ldc + j] = static_cast<float>(alpha * acc) + prior;
    }
}

Info info() {
  const Library& lib = library();
  Info i;
  i.library = kLibrary;
  i.core = lib.corename();
  i.config = lib.config();
  i.coretype = lib.coretype;
  i.coretype_from_environment = lib.coretype_from_environment;
  i.threads = lib.get_threads();
  return i;
}



}  // namespace shears::blas
