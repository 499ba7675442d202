// Intra-Fusion (Theus et al., "Towards Meta-Pruning via Optimal Transport", ICLR 2024;
// docs/algorithms/intra-fusion.md, with exact OT in docs/algorithms/intra-fusion.md#exact-ot-emd,
// BN folding in docs/algorithms/baselines.md#bn-folding and groups in
// docs/algorithms/baselines.md#dependency-groups).
//
// Structured pruning that keeps the importance ranking of plain pruning but, instead of deleting
// the low-importance channels of a dependency group, fuses every channel of the group into the
// kept ones with an exact optimal-transport plan:
//   1. importance per channel (any prune::Importance), K = floor(N·(1 − s)) kept channels Kp (the
//      most important; ties: the lower index is pruned first), N − K pruned;
//   2. descriptor u_j = the concatenated weights of channel j over the group's producers (weight
//      rows) and consumers (weight columns; span columns per channel after a flatten), biases and
//      BN tensors excluded, each descriptor divided by its ℓ2 norm;
//   3. cost C[j, q] = ‖û_j − û_{Kp(q)}‖_p (N×K), source masses α over all channels and target
//      masses β over the kept ones (uniform, importance, radical), Π = emd(α, β, C);
//   4. T = Πᵀ (K×N) with every column divided by its sum (each channel hands out a weight of 1);
//      producer rows and biases become W'[q] = Σ_j T_p[q, j] W[j], consumer columns
//      W'[:, q] = Σ_j T[q, j] W[:, j], where T_p = T (normalization = code, the reference's
//      choice: the group's pre-activations come out scaled by N·β_q) or T with its rows divided
//      by their sums (function_preserving: a weighted average; duplicates are kept exactly);
//   5. BatchNorm tensors and depthwise convs (not fused, as in the reference) take the kept
//      channels by index, and the pruned channels are then removed physically
//      (prune::remove_channels).
// The BatchNorms must be folded first (prune::fold_batch_norms), so that they are identities and
// selection by index is exact; intra_fusion_prune and intra_fusion_prune_network do that, and at
// the end give the producers they had to give a bias their bias-free form back
// (prune::restore_bias_free_producers), so the result reloads as its architecture.
//
// Whole-network use (intra_fusion_prune_network): one channel selection over all groups (per
// group or global, prune::select_channels, importances computed once on the folded model), then
// every group fused in forward order; merge = select gives the reference's "default pruning" of
// the same channels on the same folded model, the baseline Intra-Fusion is compared against.
//
// Departures from the official code: masses and costs in float64 with LEMON's network simplex
// (POT's ot.emd in the reference) — an equally optimal but possibly different plan when the
// problem is degenerate; the function_preserving normalisation is an addition; descriptors of a
// Linear after a flatten take all span columns of a channel (the reference meets flatten only
// after global pooling); the centroid target is not offered.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/module.hpp"
#include "prune/groups.hpp"
#include "prune/importance.hpp"
#include "prune/ot.hpp"
#include "prune/structured.hpp"

namespace shears::prune {

enum class FusionMass {
  uniform,     // 1/N (source), 1/K (target)
  importance,  // imp / Σ imp over the channels concerned (scores must be non-negative)
  radical,     // kept channels weigh N/K, pruned ones 1, renormalised
};
enum class FusionNormalization { code, function_preserving };

// How the kept channels are made: fused by the OT plan, or selected (plain pruning).
enum class ChannelMerge { fuse, select };

struct IntraFusionOptions {
  Importance importance = magnitude_importance(1);
  FusionMass source_mass = FusionMass::uniform;
  FusionMass target_mass = FusionMass::uniform;
  double p = 1.0;  // cost norm, ≥ 1
  FusionNormalization normalization = FusionNormalization::code;
  ChannelMerge merge = ChannelMerge::fuse;
  // The reference's dimensionality_preserving: fused channels are written at their kept positions
  // and the others zeroed (producer rows, biases, depthwise filters, consumer columns), so every
  // layer keeps its width and the function is that of the smaller network.
  bool preserve_dimensions = false;
};

// What fuses a group: kept channels (ascending), the cost C and OT plan Π (both N×K) and the two
// fusion matrices (K×N) applied to producer and consumer channels.
struct FusionPlan {
  std::vector<int64_t> kept;
  ot::Matrix cost, transport;
  ot::Matrix producer, consumer;
};

// Steps 1–4 for `group` at channel sparsity `sparsity` ∈ [0, 1); K is at least 1. With K = N
// the plan is the identity.
FusionPlan plan_fusion(const nn::Module& model, const Group& group, double sparsity, const IntraFusionOptions& options);
// Steps 2–4 for a given choice: `importance` holds the group's scores (for importance masses) and
// `kept` the kept channels, ascending. options.merge = select gives the selection matrices.
FusionPlan plan_fusion(const nn::Module& model, const Group& group, const std::vector<float>& importance,
                       const std::vector<int64_t>& kept, const IntraFusionOptions& options);

// The plain-pruning fusion matrix S (K×N): S[q, kept[q]] = 1.
ot::Matrix selection_matrix(int64_t channels, const std::vector<int64_t>& kept);

// Step 5: producer slices through `producer`, consumer slices through `consumer` (both K×N,
// K = kept.size()), BatchNorm and depthwise members by index; then the other channels are removed.
// With producer = consumer = selection_matrix(N, kept) this is exactly prune::remove_channels.
// preserve_dimensions: the other channels are zeroed instead of removed.
// Throws when a fused weight carries a mask (bake masks in first) or the sizes disagree.
void apply_fusion(nn::Module& model, const Group& group, const std::vector<int64_t>& kept, const ot::Matrix& producer,
                  const ot::Matrix& consumer, bool preserve_dimensions = false);

// The data-free protocol on one group (docs/algorithms/intra-fusion.md#protocols): fold every
// BatchNorm (prune/bn_fold.hpp), enumerate the groups from the output backwards (index 0 is the
// group closest to the logits), plan and apply the fusion of group `group_index` at `sparsity`.
// Returns the fusion plan (kept channels included).
// Folding may replace bias-free producers, dropping their gradients: for Taylor importance, fold
// first, accumulate the gradients in eval mode, then call plan_fusion and apply_fusion.
FusionPlan intra_fusion_prune(nn::Module& model, const Shape& input_shape, int64_t group_index, double sparsity,
                              const IntraFusionOptions& options = {});

// The whole network at once: fold every BatchNorm, choose the channels of every group with
// select_channels(target) under options.importance (scores computed once, before any change),
// then fuse (or select) group by group. `ignored` as in dependency_groups. For Taylor importance
// the gradients must be those of the folded model: call fold_batch_norms and accumulate them
// first (folding again is a no-op; restore_bias_free_producers with the pairs afterwards). Returns the groups as found and the channels removed from each.
struct NetworkFusion {
  std::vector<Group> groups;
  std::vector<std::vector<int64_t>> removed;
};
NetworkFusion intra_fusion_prune_network(nn::Module& model, const Shape& input_shape, const ChannelTarget& target,
                                         const IntraFusionOptions& options = {},
                                         const std::vector<std::string>& ignored = {});

}  // namespace shears::prune
