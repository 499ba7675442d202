// Channel importance for structured pruning (docs/algorithms/baselines.md#channel-importances, in
// Torch-Pruning's vocabulary): a pluggable function from a dependency group to one score per channel
// (higher = more important). Built-ins follow Torch-Pruning's GroupMagnitudeImportance
// convention: per member, the channel's slice norm (producer rows, depthwise filters, consumer
// columns; biases and BN tensors are not counted), averaged over the members, then divided by the
// mean over the group's channels, so that groups can be ranked against each other globally.
#pragma once
#include <functional>
#include <vector>

#include "core/random.hpp"
#include "nn/module.hpp"
#include "prune/groups.hpp"

namespace shears::prune {

using Importance = std::function<std::vector<float>(const nn::Module& model, const Group& group)>;

// Σ|w| (p = 1, L1) or Σw² (p = 2, L2) over each channel's weight slices.
Importance magnitude_importance(int p = 1);
// LAMP (Lee et al. 2021) over the channels' Σw² scores: sorted descending, each divided by the sum
// of all scores at least as large, so a group's largest channel scores 1.
Importance lamp_importance();
// |γ| of the group's BatchNorm members (mean over them); throws for a group without BN.
Importance bn_scale_importance();
// Σ|w ⊙ ∂L/∂w| over the weight slices, from the gradients currently held by the model's
// parameters (accumulate them over a few batches first: zero_grad, forward, loss, backward).
// Throws when a weight of the group has no gradient.
Importance taylor_importance();
// Uniform [0, 1) per channel from `gen` (kept by reference: it must outlive the function).
Importance random_importance(Generator& gen);

}  // namespace shears::prune
