// Optimizers in torch.optim's semantics (1.13): parameter groups with their own hyper-
// parameters, state keyed by parameter name (the names of the model's state_dict), and an
// update that reads each parameter's .grad (parameters without a gradient are skipped).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace shears::optim {

using shears::NamedTensors;  // (core/tensor.hpp) so that optim::NamedTensors names it too

struct ParamGroup {
  NamedTensors params;
  double lr = 0.0;
  double weight_decay = 0.0;
  double initial_lr = 0.0;  // the lr the group was built with; schedules scale from it
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  virtual const char* name() const = 0;

  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Sets every group's lr to `factor` × its initial lr (what LR schedules drive).
  void scale_lr(double factor);
  void set_lr(double lr);  // every group

  // Optimizer state as named tensors ("<param>.momentum_buffer", "<param>.exp_avg", …) plus the
  // step count, for training checkpoints; load checks every name and shape.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups);
  // Per-parameter state tensors, created on first use with the parameter's shape.
  Tensor& state(const std::string& param, const std::string& key, const Shape& shape);
  bool has_state(const std::string& param, const std::string& key) const;
  int64_t steps_ = 0;

 private:
  std::vector<ParamGroup> groups_;
  std::map<std::string, Tensor> state_;
};

// Splits named parameters into two groups: with weight decay, and without it for biases and
// normalisation parameters (1-D tensors), the usual "no weight decay on BN and biases" recipe.
std::vector<ParamGroup> decay_groups(const NamedTensors& params, double lr, double weight_decay,
                                     bool exclude_1d_from_decay);

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // added to the gradient (coupled), as torch.optim.SGD
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);
  void step() override;
  const char* name() const override { return "sgd"; }

 private:
  SgdOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: added to the gradient; AdamW: decoupled, default 1e-2
  bool decoupled = false;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);
  void step() override;
  const char* name() const override { return options_.decoupled ? "adamw" : "adam"; }

 private:
  AdamOptions options_;
};

AdamOptions adamw_defaults();  // lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2, decoupled

// torch.nn.utils.clip_grad_norm_: scales all gradients by max_norm / (total + 1e-6) when the
// total L2 norm exceeds max_norm; returns the total norm before clipping.
double clip_grad_norm(const NamedTensors& params, double max_norm);

// What is wrong with a training step whose loss or gradients hold NaN or Inf, for a message
// that names where it appeared: a non-finite loss with finite weights (the forward pass
// overflowed), or with the first tensor in `params`' order (the model's, forward) whose weights
// are broken; finite loss but non-finite gradients: the first such tensor going backward from
// the loss (the last in `params`' order). `problem` is empty when everything is finite;
// skippable is false when the weights themselves are broken, which skipping steps cannot mend.
struct NonFinite {
  std::string problem;
  bool skippable = true;
};
NonFinite check_finite(float loss, const NamedTensors& params);

}  // namespace shears::optim
