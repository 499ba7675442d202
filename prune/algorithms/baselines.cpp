// Magnitude, random, SNIP, GraSP and SynFlow scores (docs/algorithms/baselines.md#unstructured-scores).
#include "prune/algorithms/baselines.hpp"

#include <cmath>
#include <limits>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"

namespace shears::prune {
namespace {

std::shared_ptr<nn::Module> scoring_clone(const nn::Module& model, bool train_mode) {
  std::shared_ptr<nn::Module> copy = model.clone();
  copy->train(train_mode);
  copy->zero_grad();
  return copy;
}

// Σ over batches of cross_entropy(model(x) / temperature), backward into the clone's gradients.
void accumulate_loss_gradients(nn::Module& model, const std::vector<Batch>& batches, float temperature) {
  SHEARS_CHECK(!batches.empty(), "prune", "a data-dependent score needs at least one batch");
  for (const Batch& b : batches) {
    Tensor logits = model(b.images);
    if (temperature != 1.f) logits = mul(logits, 1.f / temperature);
    cross_entropy(logits, b.labels).backward();
  }
}

Tensor grad_or_zeros(const nn::Module& model, const std::string& name) {
  Tensor p = model.parameter(name);
  return p.grad().defined() ? p.grad() : Tensor::zeros(p.shape());
}

// |θ ⊙ ∇θ| on `model` (its raw parameters and their gradients).
NamedTensors abs_weight_times_grad(const nn::Module& model, const std::vector<std::string>& names) {
  NamedTensors out;
  for (const std::string& name : names) {
    Tensor w = model.parameter(name), g = grad_or_zeros(model, name), s = Tensor::empty(w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) s.data()[i] = std::abs(w.data()[i] * g.data()[i]);
    out.emplace_back(name, s);
  }
  mark_pruned(model, out);
  return out;
}

}  // namespace

NamedTensors magnitude_scores(const nn::Module& model, const std::vector<std::string>& names) {
  NamedTensors out;
  for (const std::string& name : names) {
    Tensor s = model.parameter(name).clone();
    for (int64_t i = 0; i < s.numel(); ++i) s.data()[i] = std::abs(s.data()[i]);
    out.emplace_back(name, s);
  }
  mark_pruned(model, out);
  return out;
}

NamedTensors random_scores(const nn::Module& model, const std::vector<std::string>& names, Generator& gen) {
  NamedTensors out;
  for (const std::string& name : names) out.emplace_back(name, Tensor::randn(model.parameter(name).shape(), gen));
  mark_pruned(model, out);
  return out;
}

NamedTensors snip_scores(const nn::Module& model, const std::vector<std::string>& names,
                         const std::vector<Batch>& batches, bool train_mode) {
  auto copy = scoring_clone(model, train_mode);
  accumulate_loss_gradients(*copy, batches, 1.f);
  return abs_weight_times_grad(*copy, names);
}

NamedTensors grasp_scores(const nn::Module& model, const std::vector<std::string>& names,
                          const std::vector<Batch>& batches, float temperature, bool train_mode) {
  SHEARS_CHECK(temperature > 0.f, "grasp", "temperature must be positive, got ", temperature);
  auto copy = scoring_clone(model, train_mode);
  accumulate_loss_gradients(*copy, batches, temperature);
  std::vector<Tensor> theta, g;
  double theta_sq = 0.0, g_sq = 0.0;
  for (const std::string& name : names) {
    theta.push_back(copy->parameter(name).clone());
    g.push_back(grad_or_zeros(*copy, name).clone());
    for (int64_t i = 0; i < theta.back().numel(); ++i) {
      theta_sq += static_cast<double>(theta.back().data()[i]) * theta.back().data()[i];
      g_sq += static_cast<double>(g.back().data()[i]) * g.back().data()[i];
    }
  }
  NamedTensors out;
  if (g_sq == 0.0) {  // no gradient signal: Hg = 0, every score 0 (ties broken by position)
    for (size_t l = 0; l < names.size(); ++l) out.emplace_back(names[l], Tensor::zeros(theta[l].shape()));
    mark_pruned(model, out);
    return out;
  }
  double eps = std::sqrt(static_cast<double>(std::numeric_limits<float>::epsilon())) * (1.0 + std::sqrt(theta_sq)) /
               std::sqrt(g_sq);
  // Gradients at θ + sign·ε·g.
  auto shifted_gradients = [&](double sign) {
    for (size_t l = 0; l < names.size(); ++l) {
      Tensor p = copy->parameter(names[l]);
      for (int64_t i = 0; i < p.numel(); ++i)
        p.data()[i] = static_cast<float>(theta[l].data()[i] + sign * eps * g[l].data()[i]);
    }
    copy->zero_grad();
    accumulate_loss_gradients(*copy, batches, temperature);
    std::vector<Tensor> grads;
    for (const std::string& name : names) grads.push_back(grad_or_zeros(*copy, name).clone());
    return grads;
  };
  std::vector<Tensor> plus = shifted_gradients(1.0), minus = shifted_gradients(-1.0);
  for (size_t l = 0; l < names.size(); ++l) {
    Tensor s = Tensor::empty(theta[l].shape());
    for (int64_t i = 0; i < s.numel(); ++i) {
      double hg = (static_cast<double>(plus[l].data()[i]) - minus[l].data()[i]) / (2.0 * eps);
      s.data()[i] = static_cast<float>(theta[l].data()[i] * hg);
    }
    out.emplace_back(names[l], s);
  }
  mark_pruned(model, out);
  return out;
}

NamedTensors synflow_scores(const nn::Module& model, const std::vector<std::string>& names, const Shape& input_shape,
                            bool train_mode) {
  auto copy = scoring_clone(model, train_mode);
  for (auto& [name, p] : copy->named_parameters())
    for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] = std::abs(p.data()[i]);
  for (auto& [name, b] : copy->named_buffers())
    for (int64_t i = 0; i < b.numel(); ++i) b.data()[i] = std::abs(b.data()[i]);
  sum((*copy)(Tensor::ones(input_shape))).backward();
  return abs_weight_times_grad(*copy, names);
}

NamedTensors synflow_masks(const nn::Module& model, const std::vector<std::string>& names, const Shape& input_shape,
                           const SparsityTarget& target, const SynflowOptions& options) {
  check_target(target);
  SHEARS_CHECK(options.rounds >= 1, "synflow", "rounds must be at least 1, got ", options.rounds);
  auto copy = model.clone();
  NamedTensors masks;
  for (int64_t e = 1; e <= options.rounds; ++e) {
    SparsityTarget round = target;
    round.distribution = Distribution::global;
    round.sparsity = e == options.rounds
                         ? target.sparsity
                         : 1.0 - std::pow(1.0 - target.sparsity, static_cast<double>(e) / options.rounds);
    masks = masks_from_scores(synflow_scores(*copy, names, input_shape, options.train_mode), round);
    apply_masks(*copy, masks);
  }
  return masks;
}

}  // namespace shears::prune
