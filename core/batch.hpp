// A batch as a model consumes it, and a source of batches: what the pruning methods and the
// training loop take instead of a data loader, so that they draw batches from anything that yields
// them (a loader's epochs, a fixed list, a generator in a test) and prune/ needs nothing of data/.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
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

// Fresh training batches of `batch_size` samples, shuffled in an order fixed by `seed`.
struct BatchRequest {
  int64_t batch_size = 128;
  uint64_t seed = 0;
  bool drop_last = false;  // every batch full (a smaller last batch of an epoch is skipped)
  int workers = 1;         // threads preparing batches ahead (values never depend on it)
  std::string who;         // names the caller in the error raised when no batch can be drawn
};
// Opens a batch source for each request (data::batch_factory makes one over a dataset).
using TrainingBatches = std::function<BatchSource(const BatchRequest&)>;

}  // namespace shears
