// The pruning settings as `shears prune` and `shears sweep` name them (flags and config keys), and
// their translation into the library's pruning context (prune/methods/registry.hpp): a program
// that holds the same settings gets the same pruning as the commands.
#pragma once
#include <functional>
#include <string>

#include "data/prepare.hpp"
#include "prune/methods/registry.hpp"
#include "prune/scope.hpp"
#include "train/loop.hpp"

namespace shears::pipeline {

struct PruneSpec {
  std::string method = "magnitude";     // unstructured: magnitude, random, snip, grasp, synflow, spode,
                                        // swap, lr, woodfisher
  double sparsity = 0.5;                // unstructured: of the prunable weights; structured: of channels
  std::string distribution = "global";  // global | per-layer
  prune::Scope scope;
  double max_layer_sparsity = 1.0;
  bool keep_floor = false;      // keep floor((1 − s)·d) entries, as the official codes (SparsityTarget::keep_floor)
  std::string sparse = "auto";  // sparse execution of the pruned model (nn/sparsify.hpp): auto | on | off
  std::string protocol = "shears";  // shears, or official: the method's official settings (pipeline/protocols.hpp)
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
  int64_t spode_steps = 100;  // N steps of the ODE (docs/algorithms/spode.md#options)
  double spode_radius = 1.1;  // step radius over the smallest feasible one
  // swap, lr, woodfisher (docs/algorithms/swap.md#gradual-protocol; prune/algorithms/swap.hpp): n fresh samples
  // per stage, T stages of the cubic schedule (also gradual magnitude pruning when T > 1),
  // stage_finetune_epochs of fine-tuning with `finetune`'s settings after every stage but the last.
  int64_t swap_samples = 1000, swap_stages = 1, stage_finetune_epochs = 1;
  double swap_eps = 1.0, swap_lambda = 0.01;
  bool swap_eps_relative = false;  // ε × mean(M)
  int64_t sinkhorn_iters = 5000;
  double sinkhorn_tol = 1e-9;
  bool sinkhorn_plain = false;
  std::string sinkhorn_norm = "l1";  // the stopping test's norm: l1, or l2 (POT's, the reference's)  // no
                                     // over-relaxation (the reference's iterations)
  std::string swap_solver = "principled", swap_direction = "code";
  std::string ewr_start = "lr";  // principled swap: lr or magnitude
  bool update_weights = false;   // swap/lr code solver: write the step's values
  bool wf_update = true;         // woodfisher: the OBS correction
  int64_t inner_iters = -1;      // -1: 1 for the code solver, 20 for the principled one
  int64_t resolve_iters = 30;
  double grad_noise = 0.0, grad_noise_prop = 0.1;  // docs/algorithms/swap.md#gradient-noise
  int64_t wf_block = 1000;
  double wf_damp = 1e-3;
  train::FineTuneOptions finetune;  // the fine-tune flags (lr, momentum, weight decay, batch size)
  std::string trace_folder;         // where spode_trace.csv and swap_trace.csv go; empty: nowhere
  uint64_t seed = 0;                // random scores and the choice of the scoring batches
};

// The pruning context for these settings: training batches drawn from data's training split;
// with stage_finetune_epochs > 0, fine-tuning between stages with `finetune`'s settings and
// `stage_hooks`; stage lines to `log`. Throws for an unknown name of a solver, mass or
// distribution, naming its flag.
// --distribution: global | per-layer.
prune::Distribution parse_distribution(const std::string& name);

prune::PruneContext prune_context(const PruneSpec& spec, const data::OpenedData& data,
                                  const train::FineTuneHooks& stage_hooks, std::function<void(const std::string&)> log);

// Refuses a method the registry does not hold (of the kind `structured` asks for).
void check_method(const PruneSpec& spec);
// --stages > 1 is refused for a method that runs in one shot (PruningMethod::staged) and for
// channel pruning: it would be ignored.
void check_stages(const std::string& method, bool structured, int64_t stages);

}  // namespace shears::pipeline
