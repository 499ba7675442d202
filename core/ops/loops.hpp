// Index iteration shared by the reference kernels of the op files.
#pragma once
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

}  // namespace shears
