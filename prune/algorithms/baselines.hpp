// Unstructured pruning baselines (docs/algorithms/baselines.md#unstructured-scores): each returns
// one score per entry of the named parameters (higher = more important, pruned lowest first through
// masks_from_scores), except SynFlow, which is iterative and returns the masks. Scores are computed
// on a clone of the model, so the model itself (its gradients, BN statistics, mode) is never
// touched; masks already attached to it are respected (the clone's forward uses them, and
// mark_pruned gives its pruned entries −∞ here, so they stay pruned).
//
// Data-dependent scores run the clone in eval mode by default (BN uses running statistics, so a
// score does not depend on how the batch was composed); `train_mode` switches to batch statistics.
// The loss is cross_entropy (mean over each batch), summed over the batches given.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/batch.hpp"
#include "core/random.hpp"
#include "nn/module.hpp"
#include "prune/masks.hpp"

namespace shears::prune {

// |θ ⊙ m| (global or per-layer magnitude pruning, depending on the target's distribution).
NamedTensors magnitude_scores(const nn::Module& model, const std::vector<std::string>& names);

// i.i.d. N(0, 1) scores (SpODE's random baseline), drawn from `gen` tensor by tensor in order.
NamedTensors random_scores(const nn::Module& model, const std::vector<std::string>& names, Generator& gen);

// SNIP (Lee et al. 2019): |θ ⊙ ∂L/∂θ| = |∂L/∂m| at the current mask, gradients summed over
// `batches`. The normalisation by the global sum of the reference is left out (same ranking).
NamedTensors snip_scores(const nn::Module& model, const std::vector<std::string>& names,
                         const std::vector<Batch>& batches, bool train_mode = false);

// GraSP (Wang et al. 2020): S = θ ⊙ Hg with g = Σ_batches ∇L(θ), L on logits / temperature,
// Hg the Hessian of the same summed loss times g (over the named parameters). Higher S is kept, so
// the smallest S is pruned (the original removes the largest −θ⊙Hg: the same set).
// Departure: shears' autograd has no double backward, so Hg is the central difference
// (∇L(θ + εg) − ∇L(θ − εg)) / 2ε with ε = √eps_f32 · (1 + ‖θ‖) / ‖g‖ (error O(ε²)); the
// normalisation by |Σ S| is left out (same ranking).
NamedTensors grasp_scores(const nn::Module& model, const std::vector<std::string>& names,
                          const std::vector<Batch>& batches, float temperature = 200.f, bool train_mode = false);

struct SynflowOptions {
  int64_t rounds = 100;
  // The reference runs SynFlow in train mode
  // (docs/algorithms/baselines.md#the-official-code-and-shears), but with batch statistics an
  // all-ones batch of one sample normalises a BatchNorm1d (and any 1×1 map) to β = 0, zeroing every
  // score behind it; eval mode (running statistics, made positive like everything else) keeps the
  // network linear in |θ|.
  bool train_mode = false;
};

// SynFlow (Tanaka et al. 2020), data-free and iterative: on a clone with every parameter and buffer
// replaced by its absolute value, R = Σ model(1) for an all-ones input of `input_shape` (batch
// included, e.g. {1, 3, 32, 32}); scores |θ ⊙ ∂R/∂θ|; round e = 1..rounds prunes to sparsity
// 1 − (1 − s)^(e/rounds) (exponential schedule), globally (the target's distribution is ignored;
// its cap applies). Returns the final masks, with exactly prune_count(s, d) zeros. float32 (the
// reference runs float64; deep nets may overflow here).
NamedTensors synflow_masks(const nn::Module& model, const std::vector<std::string>& names, const Shape& input_shape,
                           const SparsityTarget& target, const SynflowOptions& options = {});

// The scores one SynFlow round computes on `model` as it is (abs values are taken on a clone).
NamedTensors synflow_scores(const nn::Module& model, const std::vector<std::string>& names, const Shape& input_shape,
                            bool train_mode = false);

}  // namespace shears::prune
