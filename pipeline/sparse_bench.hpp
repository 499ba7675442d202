// `shears bench --sparsity`: a model pruned by weight magnitude, timed masked-dense against
// sparse in one run (the two alternating), with each layer's choice and the logits' agreement.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "nn/sparsify.hpp"
#include "prune/metrics.hpp"
#include "prune/scope.hpp"

namespace shears::pipeline {

// Masks every Linear and groups-1 Conv2d weight except the first layer and the classifier by
// magnitude (the usual setting of sparse-inference benchmarks; depthwise layers stay dense).
void prune_by_magnitude(nn::Module& model, const prune::SparsityTarget& target);

struct SparseBenchOptions {
  nn::SparsifyOptions sparse;
  bool train = false;  // a training step (forward, backward, SGD with momentum) instead of a forward
  int64_t runs = 10;
  int warmups = 2;
  bool profile = false;  // then time every op of `runs` more steps of each (core/profile.hpp)
};

struct SparseBenchResult {
  prune::Latency dense, sparse;  // the masked model on the dense kernels; the same sparsified
  std::vector<nn::SparseChoice> layers;
  double max_logit = 0, max_difference = 0;   // |logits| and |dense − sparse| (eval mode)
  int64_t dense_weight_bytes = 0;             // float32 bytes of the weights that run sparse
  int64_t sparse_bytes = 0;                   // their sparse forms (both patterns and values)
  std::string dense_profile, sparse_profile;  // with options.profile: per op kind and per layer
};

SparseBenchResult bench_sparse(const nn::Module& model, const Tensor& x, const std::vector<int64_t>& labels,
                               const SparseBenchOptions& options);

}  // namespace shears::pipeline
