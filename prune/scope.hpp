// Which tensors a pruning method may touch, and how much of them (docs/algorithms/README.md#scope,
// docs/algorithms/README.md#sparsity-and-density, docs/algorithms/README.md#global-and-per-layer-distribution).
//
// Prunable by default: the `weight` of every Conv2d and Linear module (biases, BN parameters and
// buffers are not). `include` adds and `exclude` removes parameters whose full dotted name matches
// one of the patterns (std::regex ECMAScript, matched against the whole name, so a plain name such
// as "fc.weight" matches itself; "layer1\\..*" matches a subtree). Exclusion wins over inclusion.
// exclude_first_and_last drops the first Conv2d/Linear weight in registration order (the stem)
// and the last (the classifier), the usual protocol of the pruning papers.
//
// Sparsity is the fraction of zeros among the prunable entries; a method is handed a target
// `sparsity`, distributed globally (one ranking across all prunable tensors) or per layer (the same
// fraction in every tensor), with a per-tensor cap `max_layer_sparsity`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace shears::prune {

struct Scope {
  std::vector<std::string> include = {};  // extra parameters (regexes over dotted names)
  std::vector<std::string> exclude = {};  // parameters to leave dense (regexes over dotted names)
  bool exclude_first_and_last = false;
};

// The prunable parameter names of `model` under `scope`, in registration order. Throws when a
// pattern is not a valid regex, or when an include pattern matches no parameter.
std::vector<std::string> prunable_parameters(const nn::Module& model, const Scope& scope = {});

enum class Distribution { global, per_layer };

struct SparsityTarget {
  double sparsity = 0.5;  // fraction of prunable entries set to zero, in [0, 1]
  Distribution distribution = Distribution::global;
  double max_layer_sparsity = 1.0;  // no tensor loses more than floor(cap · numel) entries
  // How many of d entries go: floor(s·d) (false), or d − floor((1 − s)·d), i.e. keep
  // floor((1 − s)·d) as the official codes of SWAP and SpODE do (true: one more pruned entry when
  // s·d is not an integer).
  bool keep_floor = false;
};

// Throws unless 0 ≤ sparsity ≤ 1 and 0 ≤ max_layer_sparsity ≤ 1 (a density passed by mistake as
// a percentage, e.g. 90, is caught here).
void check_target(const SparsityTarget& target);

// Zeros per tensor of the effective (masked) weights, for reports and tests.
struct LayerSparsity {
  std::string name;
  int64_t numel = 0, zeros = 0;
  double sparsity() const { return numel ? static_cast<double>(zeros) / numel : 0.0; }
};
struct SparsityReport {
  std::vector<LayerSparsity> layers;
  int64_t numel = 0, zeros = 0;
  double sparsity() const { return numel ? static_cast<double>(zeros) / numel : 0.0; }
};
SparsityReport sparsity_report(const nn::Module& model, const std::vector<std::string>& names);

}  // namespace shears::prune
