#include "pipeline/sparse_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/masks.hpp"

namespace shears::pipeline {

void prune_by_magnitude(nn::Module& model, const prune::SparsityTarget& target) {
  prune::Scope scope;
  scope.exclude_first_and_last = true;
  const std::vector<std::string> prunable = prune::prunable_parameters(model, scope);
  std::vector<std::string> names;
  for (auto& [prefix, m] : model.named_modules()) {
    const auto* conv = dynamic_cast<const nn::Conv2d*>(m);
    const std::string name = prefix.empty() ? "weight" : prefix + ".weight";
    if ((conv && conv->groups() == 1) || dynamic_cast<const nn::Linear*>(m))
      if (std::find(prunable.begin(), prunable.end(), name) != prunable.end()) names.push_back(name);
  }
  prune::apply_masks(model, prune::masks_from_scores(prune::magnitude_scores(model, names), target));
}

namespace {

// The step bench_sparse times for one of the two models.
std::function<void()> step_of(nn::Module& model, optim::Sgd& sgd, const Tensor& x, const std::vector<int64_t>& labels,
                              bool train) {
  if (!train)
    return [&model, &x] {
      NoGradGuard no_grad;
      model(x);
    };
  return [&model, &sgd, &x, &labels] {
    Tensor loss = cross_entropy(model(x), labels);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
  };
}

std::string profile_of(const std::function<void()>& step, int64_t runs) {
  profile::Session session;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < runs; ++i) step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return profile::format_report(session.entries(), seconds / runs, runs);
}

// Logits in training mode: BatchNorm normalises with the batch's statistics, so the layers'
// differences reach the logits instead of vanishing under a fresh model's classifier bias.
void compare_logits(nn::Module& dense, nn::Module& sparse, const Tensor& x, SparseBenchResult& out) {
  NoGradGuard no_grad;
  dense.train();
  sparse.train();
  Tensor a = dense(x), b = sparse(x);
  for (int64_t i = 0; i < a.numel(); ++i) {
    out.max_logit = std::max(out.max_logit, static_cast<double>(std::abs(a.data()[i])));
    out.max_difference = std::max(out.max_difference, static_cast<double>(std::abs(a.data()[i] - b.data()[i])));
  }
}

}  // namespace

SparseBenchResult bench_sparse(const nn::Module& model, const Tensor& x, const std::vector<int64_t>& labels,
                               const SparseBenchOptions& options) {
  SparseBenchResult out;
  auto dense = model.clone(), sparse = model.clone();
  nn::densify(*dense);
  nn::SparsifyOptions sparse_options = options.sparse;
  sparse_options.freeze = !options.train;  // inference as deployed: no gather from the dense weights
  out.layers = nn::sparsify(*sparse, sparse_options);
  for (const nn::SparseChoice& c : out.layers)
    if (c.sparse) out.dense_weight_bytes += sparse->parameter(c.name).numel() * int64_t{4};
  out.sparse_bytes = nn::sparse_bytes(*sparse);
  compare_logits(*dense, *sparse, x, out);
  dense->train(options.train);
  sparse->train(options.train);
  optim::SgdOptions sgd_options;
  sgd_options.lr = 0.01, sgd_options.momentum = 0.9;
  optim::Sgd dense_sgd({{dense->named_parameters(), 0.01, 0.0, 0.01}}, sgd_options);
  optim::Sgd sparse_sgd({{sparse->named_parameters(), 0.01, 0.0, 0.01}}, sgd_options);
  const auto dense_step = step_of(*dense, dense_sgd, x, labels, options.train);
  const auto sparse_step = step_of(*sparse, sparse_sgd, x, labels, options.train);
  std::tie(out.dense, out.sparse) = prune::time_alternating(dense_step, sparse_step, options.runs, options.warmups);
  if (options.profile) {
    out.dense_profile = profile_of(dense_step, options.runs);
    out.sparse_profile = profile_of(sparse_step, options.runs);
  }
  return out;
}

}  // namespace shears::pipeline
