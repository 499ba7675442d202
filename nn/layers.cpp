#include "nn/layers.hpp"

#include <string>

#include "core/ops.hpp"
#include "core/sparse.hpp"
#include "nn/init.hpp"

namespace shears::nn {

namespace {

void check_positive(int64_t v, const char* layer, const char* what) {
  SHEARS_CHECK(v > 0, layer, what, " must be positive, got ", v);
}

}  // namespace

// ---- Linear

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen) {
  check_positive(in_features, "Linear", "in_features");
  check_positive(out_features, "Linear", "out_features");
  register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (bias) register_parameter("bias", Tensor::empty({out_features}));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  Tensor w = parameter("weight"), b = has_parameter("bias") ? parameter("bias") : Tensor();
  init::default_linear_or_conv_(w, b, gen);
}

Tensor Linear::forward(const Tensor& x) {
  Tensor bias = has_parameter("bias") ? effective("bias") : Tensor();
  if (auto sparse = sparse_form("weight"))
    return sparse_linear(x, sparse->frozen() ? Tensor() : parameter("weight"), sparse, bias);
  return linear(x, effective("weight"), bias);
}

int64_t Linear::macs(const Shape& /*input*/, const Shape& output) const { return numel(output) * in_features(); }

// ---- Conv2d

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, const Conv2dConfig& config, Generator& gen)
    : config_(config), depthwise_(config.groups > 1 && config.groups == in_channels && in_channels == out_channels) {
  check_positive(config.groups, "Conv2d", "groups");
  check_positive(kernel.h * kernel.w, "Conv2d", "kernel size");
  SHEARS_CHECK(in_channels > 0 && out_channels > 0 && in_channels % config.groups == 0 &&
                   out_channels % config.groups == 0,
               "Conv2d", "in_channels ", in_channels, " and out_channels ", out_channels,
               " must be positive multiples of groups ", config.groups);
  register_parameter("weight", Tensor::empty({out_channels, in_channels / config.groups, kernel.h, kernel.w}));
  if (config.bias) register_parameter("bias", Tensor::empty({out_channels}));
  reset_parameters(gen);
}

void Conv2d::reset_parameters(Generator& gen) {
  Tensor w = parameter("weight"), b = has_parameter("bias") ? parameter("bias") : Tensor();
  init::default_linear_or_conv_(w, b, gen);
}

Conv2dConfig Conv2d::config() const {
  Conv2dConfig current = config_;
  current.groups = groups();
  return current;
}

Conv2dOptions Conv2d::options() const {
  return {config_.stride.array(), config_.padding.array(), config_.dilation.array(), groups()};
}

Tensor Conv2d::forward(const Tensor& x) {
  Tensor bias = has_parameter("bias") ? effective("bias") : Tensor();
  if (auto sparse = sparse_form("weight"))
    return sparse_conv2d(x, sparse->frozen() ? Tensor() : parameter("weight"), sparse, bias, options());
  return conv2d(x, effective("weight"), bias, options());
}

int64_t Conv2d::macs(const Shape& /*input*/, const Shape& output) const {
  const Shape& w = parameter("weight").shape();
  return numel(output) * w[1] * w[2] * w[3];
}

// ---- BatchNorm

BatchNorm::BatchNorm(int64_t num_features, const BatchNormConfig& config, int64_t input_rank)
    : config_(config), num_features_(num_features), input_rank_(input_rank) {
  check_positive(num_features, "BatchNorm", "num_features");
  if (config.affine) {
    register_parameter("weight", Tensor::ones({num_features}));
    register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (config.track_running_stats) {
    register_buffer("running_mean", Tensor::zeros({num_features}));
    register_buffer("running_var", Tensor::ones({num_features}));
    register_buffer("num_batches_tracked", Tensor::scalar(0.f), Dtype::I64);
  }
}

int64_t BatchNorm::num_features() const {
  if (config_.affine) return parameter("weight").size(0);
  return config_.track_running_stats ? buffer("running_mean").size(0) : num_features_;
}

Tensor BatchNorm::forward(const Tensor& x) {
  SHEARS_CHECK(x.dim() == input_rank_, type_name(), "expected a ", input_rank_, "-D input, got ",
               to_string(x.shape()));
  bool tracking = config_.track_running_stats;
  float momentum = config_.momentum.value_or(0.f);
  if (is_training() && tracking) {
    float& batches = buffer("num_batches_tracked").data()[0];
    batches += 1.f;  // stops at 2^24 (BatchNormConfig::track_running_stats)
    if (!config_.momentum) momentum = 1.f / batches;
  }
  Tensor weight = config_.affine ? effective("weight") : Tensor();
  Tensor bias = config_.affine ? effective("bias") : Tensor();
  Tensor mean = tracking ? buffer("running_mean") : Tensor(), var = tracking ? buffer("running_var") : Tensor();
  return batch_norm(x, weight, bias, mean, var, is_training() || !tracking, momentum, config_.eps);
}

// ---- Activations, pooling, reshaping

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor ReLU6::forward(const Tensor& x) { return relu6(x); }

MaxPool2d::MaxPool2d(Size2 kernel, std::optional<Size2> stride, Size2 padding)
    : options_{kernel.array(), stride.value_or(kernel).array(), padding.array(), true} {}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, options_); }

AvgPool2d::AvgPool2d(Size2 kernel, std::optional<Size2> stride, Size2 padding, bool count_include_pad)
    : options_{kernel.array(), stride.value_or(kernel).array(), padding.array(), count_include_pad} {}

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, options_); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size_.array()); }

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim_, end_dim_); }

Dropout::Dropout(float p, Generator& gen) : p_(p), gen_(gen.next_u64()) {
  SHEARS_CHECK(p >= 0.f && p <= 1.f, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

// ---- Sequential

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(size_), std::move(module));
  ++size_;
  return *this;
}

Module& Sequential::at(int64_t index) {
  SHEARS_CHECK(index >= 0 && index < size_, "Sequential::at", "index ", index, " out of range for ", size_,
               " modules");
  return child(std::to_string(index));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (int64_t i = 0; i < size_; ++i) y = call(std::to_string(i), y);
  return y;
}

}  // namespace shears::nn
