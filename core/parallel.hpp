// The threading story: one persistent pool of shears workers runs our own kernels
// (elementwise, reductions, batch norm, pooling, im2col, depthwise conv); OpenBLAS runs its
// sgemm with its own threads, always called from outside our parallel regions, so the two
// never nest. Both use the same count: SHEARS_NUM_THREADS, or set_num_threads (--threads),
// or the number of cores.
#pragma once
#include <cstdint>
#include <functional>

namespace shears {

int num_threads();
void set_num_threads(int threads);  // also sets OpenBLAS's thread count

// Splits [0, n) into at most num_threads() contiguous chunks of at least `grain` items and runs
// f(begin, end) on each, the caller taking the first. Runs inline when n <= grain or when called
// from inside another parallel region. The split depends only on n, grain and the thread count.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

bool in_parallel_region();

}  // namespace shears
