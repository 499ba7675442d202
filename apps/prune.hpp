// What `shears prune` and `shears sweep` share: the pruning flags, one pruning step on a loaded
// model, fine-tuning with the masks fixed, and the counts of ShrinkBench's metrics
// (docs/design.md#pruning-metrics): parameters and multiply-accumulates, all and nonzero.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/session.hpp"
#include "prune/scope.hpp"

namespace shears::app {

struct FineTune {
  int64_t epochs = 0;
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  int64_t batch_size = 128;
};

struct PruneSpec {
  std::string method = "magnitude";  // unstructured: magnitude, random, snip, grasp, synflow, spode,
                                     // swap, lr, woodfisher
  double sparsity = 0.5;             // unstructured: of the prunable weights; structured: of channels
  std::string distribution = "global";  // global | per-layer
  prune::Scope scope;
  double max_layer_sparsity = 1.0;
  bool structured = false;
  std::string importance = "l1";  // structured: l1, l2, lamp, bn, taylor, random
  // Structured: method "remove" (plain channel removal) or "intrafusion" (docs/algorithms/intra-fusion.md);
  // both fold BatchNorms first with fold_bn or a group_index (the one-group protocol of
  // docs/algorithms/intra-fusion.md#protocols).
  bool fold_bn = false;
  int64_t group_index = -1;  // ≥ 0: only this group, counted from the output
  std::string fusion_source_mass = "uniform", fusion_target_mass = "uniform";
  double fusion_p = 1.0;
  std::string fusion_normalization = "code";
  bool dimensionality_preserving = false;
  int64_t round_to = 1;
  int64_t score_batches = 1, batch_size = 128;  // training batches for snip, grasp and taylor
  // After pruning, re-estimate BatchNorm running statistics on this many training batches
  // (docs/algorithms/baselines.md#bn-recalibration), for any method; 0: keep the dense model's
  // (SpODE re-estimates on its own batch regardless).
  int64_t bn_recalibrate = 0;
  int64_t synflow_rounds = 100;
  int64_t spode_steps = 100;   // N steps of the ODE (docs/algorithms/spode.md#options)
  double spode_radius = 1.1;   // step radius over the smallest feasible one
  std::string spode_trace;     // where to write the per-step trace (CSV); empty: nowhere
  // swap, lr, woodfisher (docs/algorithms/swap.md#gradual-protocol; prune/swap.hpp): n fresh samples
  // per stage, T stages of the cubic schedule (also gradual magnitude pruning when T > 1),
  // stage_finetune_epochs of fine-tuning with `finetune`'s settings after every stage but the last.
  int64_t swap_samples = 1000, swap_stages = 1, stage_finetune_epochs = 1;
  double swap_eps = 1.0, swap_lambda = 0.01;
  bool swap_eps_relative = false;  // ε × mean(M)
  int64_t sinkhorn_iters = 5000;
  double sinkhorn_tol = 1e-9;
  bool sinkhorn_plain = false;  // no over-relaxation (the reference's iterations)
  std::string swap_solver = "principled", swap_direction = "code";
  std::string ewr_start = "lr";  // principled swap: lr or magnitude
  bool update_weights = false;  // swap/lr code solver: write the step's values
  bool wf_update = true;        // woodfisher: the OBS correction
  int64_t inner_iters = -1;     // -1: 1 for the code solver, 20 for the principled one
  int64_t resolve_iters = 30;
  double grad_noise = 0.0, grad_noise_prop = 0.1;  // docs/algorithms/swap.md#gradient-noise
  int64_t wf_block = 1000;
  double wf_damp = 1e-3;
  FineTune finetune;       // the fine-tune flags (lr, momentum, weight decay, batch size)
  std::string swap_trace;  // where to write the per-stage trace (CSV); empty: nowhere
  uint64_t seed = 0;  // random scores and the choice of the scoring batches
};

// The criteria prune_model knows: unstructured methods, or channel importances (structured).
const std::vector<std::string>& criteria(bool structured);

// A sweep's method name: with --structured, "intrafusion:<importance>" or a plain importance
// (channel removal); else an unstructured method. sweep_criterion gives the name criteria() lists.
void set_sweep_method(PruneSpec& spec, const std::string& method);
std::string sweep_criterion(bool structured, const std::string& method);
// The flags of PruneSpec but --method/--sparsity (prune takes one of each, sweep lists).
void add_prune_flags(CLI::App& cli, PruneSpec& spec);

// The model's input shape for one image, {1, C, S, S}.
Shape image_shape(const OpenedData& data);

// Prunes `model` in place: masks (unstructured) or channel removal (structured). Data-dependent
// criteria read spec.score_batches shuffled batches of the training split.
void prune_model(nn::Module& model, const PruneSpec& spec, const OpenedData& data);

void add_finetune_flags(CLI::App& cli, FineTune& ft);

// SGD (cosine-decayed lr, no weight decay on 1-D tensors) with the masks fixed: masked weights
// have zero value and gradient, so they stay exactly zero. One progress line per epoch.
void fine_tune(nn::Module& model, const FineTune& ft, const OpenedData& data, uint64_t seed);

struct SizeCounts {
  int64_t size = 0, size_nz = 0;  // parameters; those nonzero with masks applied
  int64_t macs = 0, macs_nz = 0;  // per image; nz: each Conv2d/Linear's MACs × its weight density
};
SizeCounts count_size(nn::Module& model, const Shape& input_shape);

// One prunable (Conv2d/Linear) weight of the dense model, before and after pruning.
struct LayerDensity {
  std::string name;
  Shape before, after;
  int64_t nonzero = 0;  // after, masks applied
  double sparsity() const;  // 1 − nonzero / numel(before): masks and removed channels alike
};
std::vector<LayerDensity> layer_densities(const nn::Module& dense, const nn::Module& pruned);
double total_sparsity(const std::vector<LayerDensity>& layers);

}  // namespace shears::app
