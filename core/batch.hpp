// A batch as a model consumes it, and a source of batches: what the pruning methods and the
// training loop take instead of a data loader, so that they draw batches from anything that yields
// them (a loader's epochs, a fixed list, a generator in a test) and prune/ needs nothing of data/.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.hpp"

namespace shears {

struct Batch {
  Tensor images;                 // (N, C, H, W) float32
  std::vector<int64_t> labels;   // N
  std::vector<int64_t> indices;  // the dataset index of each sample
};

// Gives the next batch on every call, without end; throws shears::Error when it has none to give.
using BatchSource = std::function<Batch()>;

}  // namespace shears
