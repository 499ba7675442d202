// Structured (channel) pruning with physical removal, after Torch-Pruning
// (docs/algorithms/baselines.md#structured-pruning: groups, importances, selection and removal).
//
// select_channels ranks each group's channels by an Importance and picks the lowest: per group
// (the same ratio in every group) or globally (one ranking over all groups' normalised scores),
// with a per-group cap and channel rounding (the kept count is rounded up to a multiple of
// round_to; rounding removes fewer channels, never more). A group always keeps one channel. The
// ratio is a *channel* ratio: removing p of a layer's in- and out-channels removes about
// 1 − (1 − p)² of its weights.
//
// remove_channels cuts the group's slices out of the model in place: the result is a smaller
// dense model (fewer parameters and MACs) whose layers read their sizes from the new shapes. A
// depthwise conv is replaced by a new Conv2d with the new channel count as its groups. Masks on
// cut parameters are cut too (their masked entries are first baked in as zeros). Gradients are
// cleared; optimizers built before must be rebuilt. Checkpoints of the result reload with
// nn::load_model (widths are read from the tensor shapes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "prune/groups.hpp"
#include "prune/importance.hpp"
#include "prune/scope.hpp"

namespace shears::prune {

struct ChannelTarget {
  double ratio = 0.5;  // fraction of each group's channels (per group) or of all channels (global)
  Distribution distribution = Distribution::per_layer;
  double max_ratio = 1.0;  // per-group cap
  int64_t round_to = 1;
};

// For each group, the channels to remove (ascending). Throws when the target is invalid, an
// importance returns the wrong number of scores or NaN, or (global) the cap makes it unreachable.
std::vector<std::vector<int64_t>> select_channels(const nn::Module& model, const std::vector<Group>& groups,
                                                  const Importance& importance, const ChannelTarget& target);

void remove_channels(nn::Module& model, const Group& group, const std::vector<int64_t>& channels);

// Groups, importance, selection and removal in one call; returns the groups as they were before
// removal with the channels removed from each.
struct ChannelPruning {
  std::vector<Group> groups;
  std::vector<std::vector<int64_t>> removed;
};
ChannelPruning prune_channels(nn::Module& model, const Shape& input_shape, const Importance& importance,
                              const ChannelTarget& target, const std::vector<std::string>& ignored = {});

}  // namespace shears::prune
