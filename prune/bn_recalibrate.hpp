// BatchNorm re-estimation after mask changes (docs/algorithms/baselines.md#bn-recalibration).
//
// recalibrate_batch_norm forgets the running statistics of every BatchNorm of `model` that tracks
// them and re-estimates them on `batches`: each batch goes through the model in train mode under a
// no-grad guard (no parameter changes, no gradients), and every BatchNorm's running mean and
// running variance become the plain average over the batches of the batch mean and the unbiased
// batch variance of its input, num_batches_tracked the number of batches — PyTorch's
// reset_running_stats() followed by forwards with momentum=None (the cumulative average), whatever
// momentum the layer was built with. In train mode BatchNorm normalises with batch statistics,
// so the running values never influence the forwards used to measure them. The model's mode is
// restored afterwards.
#pragma once
#include <vector>

#include "core/batch.hpp"
#include "nn/module.hpp"

namespace shears::prune {

// Throws when `batches` is empty and the model has a BatchNorm that tracks running statistics.
void recalibrate_batch_norm(nn::Module& model, const std::vector<Batch>& batches);

}  // namespace shears::prune
