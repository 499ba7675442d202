// Index iteration shared by the reference kernels of the op files.
#pragma once
#include "core/parallel.hpp"
#include "core/tensor.hpp"

namespace shears {

// Calls f(flat_index, multi_index) for every element of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F f) {
  int64_t n = numel(shape);
  Shape idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(i, idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// Elementwise work below this many elements is not worth waking the pool for.
inline constexpr int64_t kElementwiseGrain = 1 << 15;

// Runs f(begin, end) over [0, n) in parallel chunks of at least kElementwiseGrain elements.
template <typename F>
void parallel_elementwise(int64_t n, F f) {
  parallel_for(n, kElementwiseGrain, f);
}

}  // namespace shears
