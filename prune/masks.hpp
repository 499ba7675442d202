// Masks keyed by parameter name, in torch.nn.utils.prune's vocabulary (docs/algorithms/README.md#masks;
// ties: docs/algorithms/README.md#tie-breaking; the scores: docs/algorithms/baselines.md#unstructured-scores).
//
// A method produces one score per prunable entry; masks_from_scores keeps the highest scores and
// prunes exactly prune_count(s, d) = floor(s·d) entries (global) or floor(s·d_l) per tensor
// (per-layer). Ties are broken deterministically: entries are ranked by (score, position), where
// position is the tensor's index in the score list then the flat index inside it, and the lowest
// rank is pruned first — so among equal scores the earlier entry is pruned and the later one kept.
// Entries already pruned should carry −∞ (see mark_pruned) so they stay pruned.
//
// Masks are attached through Module::set_mask: the forward uses parameter ⊙ mask, so the raw
// parameter's gradient is zero where the mask is. apply_masks also zeroes the raw parameter there.
// With raw value 0 and gradient 0 at a pruned entry, SGD (momentum, coupled weight decay,
// Nesterov), Adam and AdamW all leave it exactly 0 (their state there stays 0 too; tested), so
// fine-tuning with fixed masks needs nothing else. enforce_masks re-zeroes the raw values for
// code that writes parameters directly (a custom optimizer, a weight copy): call it after such a
// step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "prune/scope.hpp"

namespace shears::prune {

using nn::NamedTensors;

// floor(s·d), robust to the rounding of s·d (0.29 · 100 is 28.999…: 29 entries).
int64_t prune_count(double sparsity, int64_t d);
// prune_count, or with keep_floor the count that keeps floor((1 − s)·d).
int64_t prune_count(double sparsity, int64_t d, bool keep_floor);

// Binary masks (1 keep, 0 prune) with the scores' names and shapes. Throws on NaN scores, on an
// invalid target, or when the per-layer cap makes the global target unreachable.
NamedTensors masks_from_scores(const NamedTensors& scores, const SparsityTarget& target);

// Sets scores to −∞ where the model's current mask (if any) is 0, so re-pruning keeps them pruned.
void mark_pruned(const nn::Module& model, NamedTensors& scores);

// Attaches each mask (replacing any existing one) and zeroes the raw parameter where it is 0.
void apply_masks(nn::Module& model, const NamedTensors& masks);

// parameter ← parameter ⊙ mask for every masked parameter (values only, no autograd).
void enforce_masks(nn::Module& model);

// The model's masks for `names`, an all-ones tensor for unmasked ones.
NamedTensors current_masks(const nn::Module& model, const std::vector<std::string>& names);

}  // namespace shears::prune
