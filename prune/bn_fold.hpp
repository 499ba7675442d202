// Batch-norm folding (docs/algorithms/baselines.md#bn-folding), the first step of Intra-Fusion
// (docs/algorithms/intra-fusion.md#protocols; the reference's folding is described in
// docs/algorithms/intra-fusion.md#the-official-code-and-shears).
//
// A Conv2d or Linear `y = Wx + b` whose output goes straight into a BatchNorm (running mean μ,
// running variance σ², affine γ, β, eps e) is rewritten, per output channel c, as
//   W'[c] = W[c] · γ_c/√(σ²_c + e),   b'[c] = (b_c − μ_c) · γ_c/√(σ²_c + e) + β_c,
// and the BatchNorm becomes an exact identity in eval mode (μ = 0, σ² = 1 − e, γ = 1, β = 0), so
// the eval-mode function is unchanged. A producer built without a bias is replaced by the same
// layer with one (same name, same config, mask kept). Conv2d (depthwise included) + BatchNorm2d
// and Linear + BatchNorm1d are handled.
// Departures from the Intra-Fusion reference: it folds with √σ² (no eps), leaves the BN dividing
// by √(1 + e) afterwards, and handles 4-D conv weights only; here the fold is exact and Linear +
// BN1d is supported.
#pragma once
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace shears::prune {

// Folds the BatchNorm at `norm` into the Conv2d/Linear at `producer` (dotted paths). The caller
// guarantees that the producer's output feeds only that BatchNorm. Throws shears::Error when the
// layers have the wrong types or channel counts, or the BatchNorm keeps no running statistics.
// Returns whether the producer had to be given a bias.
bool fold_batch_norm(nn::Module& model, const std::string& producer, const std::string& norm);

struct FoldedPair {
  std::string producer, norm;
  bool added_bias = false;  // the producer was built without a bias
};

// Finds every BatchNorm whose input is exactly the output of a Conv2d/Linear read by no other
// layer (one eval-mode forward of a ones input of `input_shape`, batch included), folds each,
// and returns the pairs in forward order.
std::vector<FoldedPair> fold_batch_norms(nn::Module& model, const Shape& input_shape);

// Undoes the architectural side of folding: every producer that folding gave a bias loses it again
// and its values move into the following identity BatchNorm's shift β (exact in eval mode), so
// the model has its original layer configuration and its checkpoint reloads with nn::load_model.
// Channel counts may have changed in between (pruning); pairs whose BatchNorm has no affine
// parameters keep the bias.
void restore_bias_free_producers(nn::Module& model, const std::vector<FoldedPair>& folded);

}  // namespace shears::prune
