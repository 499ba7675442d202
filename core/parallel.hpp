// The threading story: one persistent pool of shears workers runs everything — our kernels
// (elementwise, reductions, batch norm, pooling, im2col, depthwise conv) and sgemm, which
// core/blas.cpp splits into blocks, each a single-threaded OpenBLAS call. The count comes from
// SHEARS_NUM_THREADS, or set_num_threads (--threads), or the number of cores.
#pragma once
#include <cstdint>
#include <functional>

namespace shears {

int num_threads();
void set_num_threads(int threads);

// Splits [0, n) into at most num_threads() contiguous chunks of at least `grain` items and runs
// f(begin, end) on each, the caller taking the first. Runs inline when n <= grain (then nested
// calls may still split) or when called from inside a parallel region (then they run inline too).
// The split depends only on n, grain and the thread count.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

bool in_parallel_region();

}  // namespace shears
