// SpODE / PSO (docs/algorithms/spode.md); see spode.hpp for the layout and the departures.
#include "prune/algorithms/spode.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "prune/bn_recalibrate.hpp"

namespace shears::prune {

namespace {

// Flat index j of a tensor of `shape` → its mask entry within the tensor.
struct EntryMap {
  int64_t channels, inner;
  int64_t operator()(int64_t j) const { return (j / inner) % channels; }
};

EntryMap entry_map(const SoftMask& mask, size_t t) {
  const Shape& s = mask.parameter_shapes[t];
  const int64_t numel = shears::numel(s);
  return mask.structured ? EntryMap{s[1], numel / (s[0] * s[1])} : EntryMap{numel, 1};
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// The per-tensor values of a flat mask vector, shaped like the masks (parameter shape, or (C_in)).
NamedTensors to_tensors(const SoftMask& mask, const std::vector<double>& flat) {
  NamedTensors out;
  for (size_t t = 0; t < mask.names.size(); ++t) {
    Shape shape = mask.structured ? Shape{mask.channels[t]} : mask.parameter_shapes[t];
    Tensor x = Tensor::empty(shape);
    for (int64_t i = 0; i < mask.channels[t]; ++i) x.data()[i] = static_cast<float>(flat[mask.offsets[t] + i]);
    out.emplace_back(mask.names[t], x);
  }
  return out;
}

// θ ⊙ expand(p) for tensor t, as a fresh tensor of the parameter's shape.
Tensor masked_weight(const SoftMask& mask, size_t t, const Tensor& theta, const std::vector<double>& p) {
  EntryMap map = entry_map(mask, t);
  Tensor w = Tensor::empty(theta.shape());
  for (int64_t j = 0; j < theta.numel(); ++j)
    w.data()[j] = theta.data()[j] * static_cast<float>(p[mask.offsets[t] + map(j)]);
  return w;
}

// Effective weights θ = parameter ⊙ attached mask, as the forward sees them.
Tensor effective_weight(const nn::Module& model, const std::string& name) {
  Tensor theta = model.parameter(name).detach().clone();
  if (model.has_mask(name)) {
    const float* m = model.mask(name).data();
    for (int64_t j = 0; j < theta.numel(); ++j) theta.data()[j] *= m[j];
  }
  return theta;
}

// CE at w = θ ⊙ P(m) on `batch`, and e = −∇_m E by the straight-through chain rule (spode.hpp).
double loss_and_descent(nn::Module& model, const SoftMask& mask, const NamedTensors& thetas,
                        const std::vector<double>& p, const Batch& batch, std::vector<double>& e) {
  std::vector<Tensor> ws;
  for (size_t t = 0; t < thetas.size(); ++t) {
    ws.push_back(masked_weight(mask, t, thetas[t].second, p));
    model.set_parameter(mask.names[t], ws.back());
  }
  Tensor loss = cross_entropy(model(batch.images), batch.labels);
  loss.backward();
  e.assign(mask.size(), 0.0);
  for (size_t t = 0; t < thetas.size(); ++t) {
    const Tensor& theta = thetas[t].second;
    model.set_parameter(mask.names[t], theta);
    Tensor grad = ws[t].grad();
    if (!grad.defined()) continue;  // the forward did not use this tensor
    EntryMap map = entry_map(mask, t);
    for (int64_t j = 0; j < theta.numel(); ++j)
      e[mask.offsets[t] + map(j)] -= static_cast<double>(grad.data()[j]) * theta.data()[j];
  }
  return loss.item();
}

// While alive: the model in train mode (BN uses batch statistics) with no parameter
// recording gradients; on destruction the named parameters are the original tensors again, every
// requires_grad flag, buffer (BN statistics moved by the forwards) and the mode are restored.
class FrozenModel {
 public:
  FrozenModel(nn::Module& model, const NamedTensors& thetas)
      : model_(model), thetas_(thetas), was_training_(model.is_training()) {
    for (auto& [name, t] : model.named_buffers()) buffers_.emplace_back(name, t.clone());
    for (const Tensor& p : model.parameters()) {
      flags_.emplace_back(p, p.requires_grad());
      Tensor(p).requires_grad_(false);
    }
    model.train();
  }
  ~FrozenModel() {
    for (auto& [name, theta] : thetas_) model_.set_parameter(name, theta);
    for (auto& [p, flag] : flags_) p.requires_grad_(flag);
    for (auto& [name, t] : buffers_) model_.buffer(name).copy_(t);
    model_.train(was_training_);
  }
  FrozenModel(const FrozenModel&) = delete;
  FrozenModel& operator=(const FrozenModel&) = delete;

 private:
  nn::Module& model_;
  const NamedTensors& thetas_;
  bool was_training_;
  NamedTensors buffers_;
  std::vector<std::pair<Tensor, bool>> flags_;
};

}  // namespace

double SoftMask::numel() const { return std::accumulate(weights.begin(), weights.end(), 0.0); }

SoftMask make_soft_mask(const nn::Module& model, const std::vector<std::string>& names, bool structured) {
  SHEARS_CHECK(!names.empty(), "spode", "no parameters to prune");
  SoftMask mask;
  mask.structured = structured;
  mask.offsets.push_back(0);
  for (const std::string& name : names) {
    Tensor theta = effective_weight(model, name);
    SHEARS_CHECK(!structured || theta.dim() >= 2, "spode", "structured masks need a weight of rank >= 2 (input "
                 "channel = dim 1), '", name, "' has shape ", to_string(theta.shape()),
                 "; hint: leave biases out of the scope");
    mask.names.push_back(name);
    mask.parameter_shapes.push_back(theta.shape());
    size_t t = mask.names.size() - 1;
    EntryMap map = entry_map(mask, t);
    mask.channels.push_back(map.channels);
    mask.offsets.push_back(mask.offsets.back() + map.channels);
    mask.values.resize(mask.offsets.back(), 1.0);
    mask.weights.resize(mask.offsets.back(), static_cast<double>(theta.numel() / map.channels));
    mask.magnitudes.resize(mask.offsets.back(), 0.0);
    for (int64_t j = 0; j < theta.numel(); ++j) mask.magnitudes[mask.offsets[t] + map(j)] += std::abs(theta.data()[j]);
  }
  return mask;
}

double soft_density(const SoftMask& mask, SoftSparsity measure) {
  double s = 0.0;
  for (int64_t i = 0; i < mask.size(); ++i) {
    double m = mask.values[i];
    s += mask.weights[i] * (measure == SoftSparsity::l2 ? m * m : std::abs(m));
  }
  const double d = mask.numel();
  return measure == SoftSparsity::l2 ? std::sqrt(s + 1e-12) / std::sqrt(d) : s / d;
}

std::vector<double> soft_density_gradient(const SoftMask& mask, SoftSparsity measure) {
  const double d = mask.numel();
  std::vector<double> grad(mask.size());
  if (measure == SoftSparsity::l2) {
    double s = 0.0;
    for (int64_t i = 0; i < mask.size(); ++i) s += mask.weights[i] * mask.values[i] * mask.values[i];
    const double scale = 1.0 / (std::sqrt(d) * std::sqrt(s + 1e-12));
    for (int64_t i = 0; i < mask.size(); ++i) grad[i] = mask.weights[i] * mask.values[i] * scale;
  } else {
    for (int64_t i = 0; i < mask.size(); ++i) {
      double m = mask.values[i];
      grad[i] = mask.weights[i] * static_cast<double>((m > 0) - (m < 0)) / d;
    }
  }
  return grad;
}

std::vector<double> polarise(const SoftMask& mask, SoftSparsity measure, Distribution distribution) {
  const double sparsity = std::clamp(1.0 - soft_density(mask, measure), 0.0, 1.0);
  std::vector<double> p = mask.values;
  std::vector<double> scores(mask.size());
  for (int64_t i = 0; i < mask.size(); ++i) scores[i] = std::abs(mask.values[i]) * mask.magnitudes[i];
  // Polarise the ranges [begin, end) of tensors that are ranked together.
  auto polarise_range = [&](size_t begin, size_t end) {
    const int64_t lo = mask.offsets[begin], hi = mask.offsets[end];
    if (prune_count(sparsity, hi - lo) <= 1) return;
    NamedTensors ranked;
    for (size_t t = begin; t < end; ++t) {
      Tensor s = Tensor::empty({mask.channels[t]});
      for (int64_t i = 0; i < mask.channels[t]; ++i) s.data()[i] = static_cast<float>(scores[mask.offsets[t] + i]);
      ranked.emplace_back(mask.names[t], s);
    }
    NamedTensors binary = masks_from_scores(ranked, {.sparsity = sparsity, .distribution = Distribution::global});
    for (size_t t = begin; t < end; ++t)
      for (int64_t i = 0; i < mask.channels[t]; ++i) p[mask.offsets[t] + i] = binary[t - begin].second.data()[i];
  };
  if (distribution == Distribution::global) {
    polarise_range(0, mask.names.size());
  } else {
    for (size_t t = 0; t < mask.names.size(); ++t) polarise_range(t, t + 1);
  }
  return p;
}

std::vector<double> spode_direction(const std::vector<double>& g, const std::vector<double>& e, double r) {
  SHEARS_CHECK(r > 1.0, "spode", "r must be > 1 (the ratio of the step radius to the smallest feasible one), got ", r);
  SHEARS_ASSERT(g.size() == e.size());
  const double gg = dot(g, g), ee = dot(e, e), ge = dot(g, e);
  SHEARS_CHECK(gg > 0.0, "spode", "the gradient of G vanishes (all-zero mask)");
  const double disc = gg * ee - ge * ge;
  std::vector<double> f(g.size());
  if (disc <= 1e-12 * gg * ee) {  // e ∥ g (or e = 0): every feasible δ has the same eᵀδ; take the shortest
    for (size_t i = 0; i < g.size(); ++i) f[i] = g[i] / gg;
    return f;
  }
  const double x = std::sqrt((r * r - 1.0) / disc);
  const double y = (1.0 - x * ge) / gg;
  for (size_t i = 0; i < g.size(); ++i) f[i] = x * e[i] + y * g[i];
  return f;
}

double step_size(StepSchedule schedule, int64_t i, int64_t n, double end, double density, double loss_grad_norm) {
  SHEARS_CHECK(n > 0 && i >= 0 && i < n, "spode", "step ", i, " of ", n);
  switch (schedule) {
    case StepSchedule::exp:
      return std::pow(end, static_cast<double>(i) / n) - std::pow(end, static_cast<double>(i + 1) / n);
    case StepSchedule::lin:
      return (1.0 - end) / n;
    case StepSchedule::hess:
      return (density - end) / ((n - i) * loss_grad_norm + 1e-12);
  }
  SHEARS_ASSERT(false);
  return 0.0;
}

SpodeResult spode_prune(nn::Module& model, const std::vector<std::string>& names, const SparsityTarget& target,
                        const BatchSource& next_batch, const SpodeOptions& options) {
  check_target(target);
  SHEARS_CHECK(options.steps > 0, "spode_prune", "steps must be positive, got ", options.steps);
  SHEARS_CHECK(options.r > 1.0, "spode_prune", "r must be > 1, got ", options.r);
  SHEARS_CHECK(options.bn_batches >= 0, "spode_prune", "bn_batches must be >= 0, got ", options.bn_batches);
  SHEARS_CHECK(target.sparsity < 1.0, "spode_prune", "sparsity must be < 1 (the schedule ends at density 1 - s)");
  SoftMask mask = make_soft_mask(model, names, options.structured);
  // Structured: channels are ranked per layer to the channel density √(1 − s_p)
  // (docs/algorithms/spode.md#algorithm).
  const SparsityTarget final_target =
      options.structured ? SparsityTarget{.sparsity = 1.0 - std::sqrt(1.0 - target.sparsity),
                                          .distribution = Distribution::per_layer,
                                          .max_layer_sparsity = target.max_layer_sparsity}
                         : target;
  const double end = 1.0 - final_target.sparsity;

  NamedTensors thetas;
  for (const std::string& name : names) thetas.emplace_back(name, model.parameter(name));
  SpodeResult result;
  {
    FrozenModel frozen(model, thetas);
    std::vector<double> previous_p, e;
    for (int64_t i = 0; i < options.steps; ++i) {
      std::vector<double> p = polarise(mask, options.measure, final_target.distribution);
      const double loss = loss_and_descent(model, mask, thetas, p, next_batch(), e);
      std::vector<double> g = soft_density_gradient(mask, options.measure);
      for (double& v : g) v = -v;
      const double density = soft_density(mask, options.measure);
      const double dt = step_size(options.schedule, i, options.steps, end, density, std::sqrt(dot(e, e)));
      std::vector<double> f = spode_direction(g, e, options.r);

      SpodeStep step{.step = i, .dt = dt, .loss = loss};
      double zeros = 0.0;
      for (int64_t k = 0; k < mask.size(); ++k) {
        mask.values[k] += dt * f[k];
        step.increased += dt * f[k] > 0.0;
        zeros += p[k] == 0.0 ? mask.weights[k] : 0.0;
        step.regrown += !previous_p.empty() && previous_p[k] == 0.0 && p[k] != 0.0;
      }
      step.polarised_sparsity = zeros / mask.numel();
      step.soft_sparsity = 1.0 - soft_density(mask, options.measure);
      result.trace.push_back(step);
      previous_p = std::move(p);
    }
  }

  // Final scores |m|·a, binarised to exactly the target, expanded to the parameters' shapes.
  std::vector<double> scores(mask.size());
  for (int64_t k = 0; k < mask.size(); ++k) scores[k] = std::abs(mask.values[k]) * mask.magnitudes[k];
  NamedTensors binary = masks_from_scores(to_tensors(mask, scores), final_target);
  for (size_t t = 0; t < names.size(); ++t) {
    std::vector<double> flat(mask.size(), 0.0);
    const float* b = binary[t].second.data();
    for (int64_t k = 0; k < mask.channels[t]; ++k) flat[mask.offsets[t] + k] = b[k];
    result.masks.emplace_back(names[t], masked_weight(mask, t, Tensor::ones(mask.parameter_shapes[t]), flat));
  }
  apply_masks(model, result.masks);

  if (options.bn_batches > 0) {
    std::vector<Batch> bn_batches;
    for (int64_t k = 0; k < options.bn_batches; ++k) bn_batches.push_back(next_batch());
    recalibrate_batch_norm(model, bn_batches);
  }
  return result;
}

}  // namespace shears::prune
