// Cross-model fusion for Split-Data training (issue 12;
// docs/algorithms/intra-fusion.md#model-fusion): K models of one architecture, trained apart,
// become one by aligning their channels to a reference model and averaging — the weight-based
// OTFusion of Singh & Jaggi ("Model Fusion via Optimal Transport", NeurIPS 2020), with this
// project's exact OT (prune/ot.hpp) and dependency groups (prune/groups.hpp).
//
// What align_channels does, for `model` against `reference` (same names and shapes):
//   1. the dependency groups of `reference` (prune::dependency_groups), in forward order;
//   2. per group of N channels, a descriptor per channel and model: the rows (dim 0 slices) of the
//      group's producers whose input is already aligned — an earlier group, or a feature map no
//      group covers such as the image — with their biases, and of its depthwise convs. (Producers
//      reading a later group are left out: their columns are still in the other model's order.
//      The first producer of a group always qualifies, since its input is produced earlier.)
//   3. cost C[i, j] = ‖u_i(model) − u_j(reference)‖₂ and Π = ot::emd(1/N, 1/N, C): with uniform
//      masses of equal count an optimal vertex, i.e. a permutation (Π = P/N);
//   4. the channel map M = N·Πᵀ (N×N, rows sum to 1) applied to every slice of the group in
//      `model` — producer rows and biases, BatchNorm weights, biases and running statistics,
//      depthwise filters, consumer columns (span columns per channel after a flatten) — so a
//      permutation leaves the model's function unchanged and later groups see aligned inputs.
// fuse_models then averages the aligned models' parameters and float buffers (BatchNorm running
// statistics included; integer buffers such as num_batches_tracked are the reference's).
//
// Departures from OTFusion: its ground cost is also the Euclidean distance between incoming
// weights, but it aligns layer by layer without residual groups (here a residual sum shares one
// map), and offers activation-based costs and a non-uniform "importance" mass (not here). Models
// are not BN-folded first: with permutation maps BatchNorms are permuted exactly. With align =
// false, fuse_models is the naive baseline (plain averaging, the "vanilla" of the paper).
#pragma once
#include <memory>
#include <vector>

#include "nn/module.hpp"
#include "prune/groups.hpp"
#include "prune/ot.hpp"

namespace shears::prune {

// Every slice of `group` in `model` becomes map · slice along its channel dimension: channel j of
// the result is Σ_i map(j, i) · channel i (map is N×N). A permutation map permutes the channels,
// which keeps the model's function. Throws when a sliced parameter carries a mask or a size differs.
void map_channels(nn::Module& model, const Group& group, const ot::Matrix& map);

// Steps 1–4 above; `model` is changed in place, `reference` is only read (its groups are traced
// with one forward of `input_shape`, batch included). Returns the map applied to each group, in
// the order of dependency_groups(reference). Throws when the two models' tensors differ in names
// or shapes.
std::vector<ot::Matrix> align_channels(nn::Module& model, nn::Module& reference, const Shape& input_shape);

struct ModelFusionOptions {
  bool align = true;  // false: naive averaging, the baseline
};

// The mean of models[0] and models[1..] aligned to it (on copies: the inputs are unchanged), as a
// new model with models[0]'s architecture and metadata.
std::shared_ptr<nn::Module> fuse_models(const std::vector<std::shared_ptr<nn::Module>>& models, const Shape& input_shape,
                                        const ModelFusionOptions& options = {});

}  // namespace shears::prune
