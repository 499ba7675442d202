// Per-sample gradient matrix G (n × p) for chosen Linear and Conv2d weights
// (docs/algorithms/swap.md#per-sample-gradients), used by SWAP and the Fisher baselines (WoodFisher,
// CHITA).
//
// Row i is the gradient of cross_entropy on sample i alone with respect to the named weights,
// flattened in the order of `names` (each row-major), with masked entries 0 (the gradient of the
// raw parameter). The model runs in eval mode (BN uses running statistics, so samples do not
// interact; its mode is restored), `block` samples per forward and backward: one pass gives each
// watched layer's input x and output gradient δ (captured by wrapping the backward of the
// layer's output node), from which the per-sample weight gradients follow without a loop over the
// network: Linear δ_i x_iᵀ, Conv2d the weight gradient of sample i alone (the conv's own
// backward-weight kernel with a batch of one). Memory: G itself (n·p floats, which the caller
// sizes) plus one block's activations. Gradients held by the model's parameters are left as they
// were.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace shears::prune {

// names: "<path>.weight" of Conv2d or Linear modules. images (n, …), labels n.
Tensor per_sample_gradients(nn::Module& model, const std::vector<std::string>& names, const Tensor& images,
                            const std::vector<int64_t>& labels, int64_t block = 32);

}  // namespace shears::prune
