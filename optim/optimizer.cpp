#include "optim/optimizer.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears::optim {

namespace {

// Runs an update kernel over a parameter in parallel chunks.
template <typename F>
void over_chunks(int64_t n, F f) {
  parallel_for(n, 1 << 15, [&](int64_t begin, int64_t end) { f(begin, end - begin); });
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::map<std::string, int> seen;
  for (ParamGroup& g : groups_) {
    SHEARS_CHECK(g.lr >= 0.0, "optimizer", "learning rate must be >= 0, got ", g.lr);
    SHEARS_CHECK(g.weight_decay >= 0.0, "optimizer", "weight decay must be >= 0, got ", g.weight_decay);
    g.initial_lr = g.lr;
    for (const auto& [name, p] : g.params)
      SHEARS_CHECK(seen[name]++ == 0, "optimizer", "parameter '", name, "' appears in more than one group");
  }
}

void Optimizer::zero_grad() {
  profile::OpScope scope("zero_grad");
  for (ParamGroup& g : groups_)
    for (auto& [name, p] : g.params) p.zero_grad();
}

void Optimizer::scale_lr(double factor) {
  for (ParamGroup& g : groups_) g.lr = g.initial_lr * factor;
}

void Optimizer::set_lr(double lr) {
  for (ParamGroup& g : groups_) g.lr = lr;
}

Tensor& Optimizer::state(const std::string& param, const std::string& key, const Shape& shape) {
  auto [it, inserted] = state_.try_emplace(param + "." + key);
  if (inserted) it->second = Tensor::zeros(shape);
  return it->second;
}

bool Optimizer::has_state(const std::string& param, const std::string& key) const {
  return state_.count(param + "." + key) > 0;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out(state_.begin(), state_.end());
  out.emplace_back("step", Tensor::scalar(static_cast<float>(steps_)));
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  std::map<std::string, Shape> shapes;
  for (const ParamGroup& g : groups_)
    for (const auto& [name, p] : g.params) shapes[name] = p.shape();
  // Step counts ("step", Adam's "<param>.step") are scalars holding a count; every other entry
  // has its parameter's shape.
  auto count = [&](const std::string& key, const Tensor& value) {
    SHEARS_CHECK(value.dim() == 0, std::string(name()) + " state",
                 "entry '", key, "' should be a scalar step count, got shape ", to_string(value.shape()));
    const float v = value.item();
    SHEARS_CHECK(v >= 0.f && v < 0x1p24f && std::trunc(v) == v, std::string(name()) + " state", "entry '", key,
                 "' should be a whole number of steps in [0, 2^24), got ", v);
    return static_cast<int64_t>(v);
  };
  std::map<std::string, Tensor> loaded;
  int64_t steps = 0;
  for (const auto& [key, value] : state) {
    if (key == "step") {
      steps = count(key, value);
      continue;
    }
    auto dot = key.rfind('.');
    std::string param = dot == std::string::npos ? key : key.substr(0, dot);
    auto it = shapes.find(param);
    SHEARS_CHECK(it != shapes.end(), std::string(name()) + " state", "entry '", key,
                 "' names no parameter of this optimizer");
    if (key.ends_with(".step")) {
      count(key, value);
    } else {
      SHEARS_CHECK(value.shape() == it->second, std::string(name()) + " state", "entry '", key, "' has shape ",
                   to_string(value.shape()), ", parameter '", param, "' has ", to_string(it->second));
    }
    loaded[key] = value.clone();
  }
  state_ = std::move(loaded);
  steps_ = steps;
}

std::vector<ParamGroup> decay_groups(const NamedTensors& params, double lr, double weight_decay,
                                     bool exclude_1d_from_decay) {
  ParamGroup decay{{}, lr, weight_decay, lr}, no_decay{{}, lr, 0.0, lr};
  for (const auto& np : params) (exclude_1d_from_decay && np.second.dim() <= 1 ? no_decay : decay).params.push_back(np);
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options) : Optimizer(std::move(groups)), options_(options) {
  SHEARS_CHECK(options.momentum >= 0.0, "sgd", "momentum must be >= 0, got ", options.momentum);
  SHEARS_CHECK(!options.nesterov || (options.momentum > 0.0 && options.dampening == 0.0), "sgd",
               "Nesterov momentum requires a momentum and zero dampening");
}

void Sgd::step() {
  profile::OpScope scope("optimizer step");
  const kernels::Table& k = kernels::kernels();
  for (ParamGroup& g : param_groups())
    for (auto& [name, p] : g.params) {
      if (!p.grad().defined()) continue;
      bool first = !has_state(name, "momentum_buffer");
      float* buf = options_.momentum != 0.0 ? state(name, "momentum_buffer", p.shape()).data() : nullptr;
      kernels::SgdStep s{static_cast<float>(g.lr), static_cast<float>(options_.momentum),
                         static_cast<float>(options_.dampening), static_cast<float>(g.weight_decay),
                         options_.nesterov, first};
      // (Named, not the structured binding p: clang 14 cannot capture a binding in a lambda.)
      float* weights = p.data();
      const float* grad = p.grad().data();
      over_chunks(p.numel(), [&](int64_t i, int64_t n) {
        k.sgd_step(weights + i, grad + i, buf ? buf + i : nullptr, n, s);
      });
    }
  ++steps_;
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options) : Optimizer(std::move(groups)), options_(options) {
  SHEARS_CHECK(options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 && options.beta2 < 1.0,
               name(), "betas must be in [0, 1), got (", options.beta1, ", ", options.beta2, ")");
  SHEARS_CHECK(options.eps >= 0.0, name(), "eps must be >= 0, got ", options.eps);
}

void Adam::step() {
  profile::OpScope scope("optimizer step");
  const kernels::Table& k = kernels::kernels();
  for (ParamGroup& g : param_groups())
    for (auto& [name, p] : g.params) {
      if (!p.grad().defined()) continue;
      Tensor& m = state(name, "exp_avg", p.shape());
      Tensor& v = state(name, "exp_avg_sq", p.shape());
      Tensor& t = state(name, "step", {});
      t.data()[0] += 1.f;
      kernels::AdamStep s{static_cast<float>(g.lr), static_cast<float>(options_.beta1),
                          static_cast<float>(options_.beta2), static_cast<float>(options_.eps),
                          static_cast<float>(g.weight_decay), options_.decoupled, static_cast<int64_t>(t.item())};
      float* weights = p.data();  // (see Sgd::step)
      const float* grad = p.grad().data();
      over_chunks(p.numel(), [&](int64_t i, int64_t n) {
        k.adam_step(weights + i, grad + i, m.data() + i, v.data() + i, n, s);
      });
    }
  ++steps_;
}

AdamOptions adamw_defaults() {
  AdamOptions o;
  o.weight_decay = 1e-2;
  o.decoupled = true;
  return o;
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  const kernels::Table& k = kernels::kernels();
  double total = 0.0;
  for (const auto& [name, p] : params)
    if (p.grad().defined()) total += k.dot(p.grad().data(), p.grad().data(), p.numel());
  total = std::sqrt(total);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1.0)
    for (const auto& [name, p] : params)
      if (p.grad().defined()) {
        Tensor g = p.grad();
        k.scale_shift(g.data(), g.data(), g.numel(), static_cast<float>(coef), 0.f);
      }
  return total;
}

namespace {

bool all_finite(const Tensor& t) {
  const float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

}  // namespace

NonFinite check_finite(float loss, const NamedTensors& params) {
  std::vector<std::string> grads;
  for (const auto& [name, p] : params)
    if (p.grad().defined() && !all_finite(p.grad())) grads.push_back(name);
  if (std::isfinite(loss) && grads.empty()) return {};
  if (std::isfinite(loss))
    return {detail::concat("the gradients became non-finite, first in '", grads.back(),
                           "' going backward from the loss (", grads.size(), " of ", params.size(),
                           " parameter tensors hold NaN or Inf)")};
  std::vector<std::string> weights;
  for (const auto& [name, p] : params)
    if (!all_finite(p)) weights.push_back(name);
  if (weights.empty())
    return {detail::concat("the loss became ", loss, " with finite weights (the forward pass overflowed)")};
  return {detail::concat("the loss became ", loss, ": the weights of '", weights.front(), "' (the first of ",
                         weights.size(), " parameter tensors) hold NaN or Inf"),
          false};
}

}  // namespace shears::optim
