// A synthetic image dataset for tests and benchmarks: each class has a random prototype image and
// each sample is its class's prototype averaged with random noise, so a model can learn it. Sample
// i (label i mod num_classes) depends only on (seed, i); test samples continue the index after
// the train samples, so the two parts never share an image.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"
#include "data/dataset.hpp"

namespace shears::data {

struct SyntheticOptions {
  int64_t train_size = 1024;
  int64_t test_size = 256;
  Shape image_shape{3, 32, 32};  // (C, H, W)
  int64_t num_classes = 10;
  uint64_t seed = 0;
};

TrainTest make_synthetic(const SyntheticOptions& options = {});

}  // namespace shears::data
