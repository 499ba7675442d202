// The layers, with torch.nn's names, arguments, defaults and initialisation (1.13). Each layer
// keeps its tensors only in the Module registry and reads sizes back from them (a Conv2d's
// channels are its weight's shape, a depthwise Conv2d's groups its out-channels; a BatchNorm's
// features its weight's or running mean's length), so a parameter shrunk by structured pruning
// keeps the layer consistent. Initialisation draws from the Generator passed in (default:
// default_generator()).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>

#include "core/ops.hpp"
#include "core/random.hpp"
#include "nn/module.hpp"

namespace shears::nn {

// A (height, width) pair that converts from one number, as PyTorch's int-or-tuple arguments.
struct Size2 {
  int64_t h, w;
  Size2(int64_t both) : h(both), w(both) {}  // implicit on purpose: Conv2d(3, 16, 3)
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  std::array<int64_t, 2> array() const { return {h, w}; }
};

// y = x Wᵀ + b; weight (out_features, in_features).
class Linear : public Cloneable<Linear> {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Linear"; }
  int64_t macs(const Shape& input, const Shape& output) const override;
  int64_t in_features() const { return parameter("weight").size(1); }
  int64_t out_features() const { return parameter("weight").size(0); }
  void reset_parameters(Generator& gen);
};

struct Conv2dConfig {
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// weight (out_channels, in_channels / groups, kH, kW), bias (out_channels).
// A depthwise conv (built with groups == in_channels == out_channels > 1) stays depthwise when its
// weight is shrunk: its groups are its out-channels, read from the weight. Other convs keep the
// groups they were built with (shrinking a grouped conv must keep both sizes multiples of them).
class Conv2d : public Cloneable<Conv2d> {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, const Conv2dConfig& config = {},
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Conv2d"; }
  int64_t macs(const Shape& input, const Shape& output) const override;
  bool depthwise() const { return depthwise_; }
  int64_t groups() const { return depthwise_ ? out_channels() : config_.groups; }
  int64_t in_channels() const { return parameter("weight").size(1) * groups(); }
  int64_t out_channels() const { return parameter("weight").size(0); }
  Conv2dConfig config() const;  // as built, with the current groups()
  Conv2dOptions options() const;  // what forward passes to conv2d
  void reset_parameters(Generator& gen);

 private:
  Conv2dConfig config_;
  bool depthwise_;
};

struct BatchNormConfig {
  float eps = 1e-5f;
  std::optional<float> momentum = 0.1f;  // nullopt: cumulative average (1 / num_batches_tracked)
  bool affine = true;                    // learnable weight (γ = 1) and bias (β = 0)
  // running_mean, running_var, num_batches_tracked (saved as I64; counted in float32 like every
  // tensor here, so exact up to 2^24 = 16,777,216 training batches, after which it stops growing
  // and, with momentum nullopt, the average stops forgetting. PyTorch counts in int64.)
  bool track_running_stats = true;
};

// Training normalises with batch statistics and updates the running ones; eval uses the running
// ones (or batch statistics when they are not tracked).
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  int64_t num_features() const;
  const BatchNormConfig& config() const { return config_; }

 protected:
  BatchNorm(int64_t num_features, const BatchNormConfig& config, int64_t input_rank);

 private:
  BatchNormConfig config_;
  int64_t num_features_;  // as built: the size when neither affine nor tracking gives a tensor
  int64_t input_rank_;
};

class BatchNorm1d : public Cloneable<BatchNorm1d, BatchNorm> {  // input (N, C)
 public:
  explicit BatchNorm1d(int64_t num_features, const BatchNormConfig& config = {}) : Cloneable(num_features, config, 2) {}
  const char* type_name() const override { return "BatchNorm1d"; }
};

class BatchNorm2d : public Cloneable<BatchNorm2d, BatchNorm> {  // input (N, C, H, W)
 public:
  explicit BatchNorm2d(int64_t num_features, const BatchNormConfig& config = {}) : Cloneable(num_features, config, 4) {}
  const char* type_name() const override { return "BatchNorm2d"; }
};

class ReLU : public Cloneable<ReLU> {
 public:
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "ReLU"; }
};

class ReLU6 : public Cloneable<ReLU6> {
 public:
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "ReLU6"; }
};

// stride defaults to the kernel size, as in PyTorch.
class MaxPool2d : public Cloneable<MaxPool2d> {
 public:
  explicit MaxPool2d(Size2 kernel, std::optional<Size2> stride = {}, Size2 padding = 0);
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "MaxPool2d"; }

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Cloneable<AvgPool2d> {
 public:
  explicit AvgPool2d(Size2 kernel, std::optional<Size2> stride = {}, Size2 padding = 0, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "AvgPool2d"; }

 private:
  Pool2dOptions options_;
};

class AdaptiveAvgPool2d : public Cloneable<AdaptiveAvgPool2d> {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : output_size_(output_size) {}
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "AdaptiveAvgPool2d"; }

 private:
  Size2 output_size_;
};

class Flatten : public Cloneable<Flatten> {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Flatten"; }

 private:
  int64_t start_dim_, end_dim_;
};

// Zeroes each element with probability p in training and scales the rest by 1/(1-p). Draws from
// its own Generator, seeded once from `gen` at construction (one draw), so a model's dropout
// masks follow the seed it was built with and nothing outside the layer can dangle; clone()
// copies that generator by value, so a clone continues the same stream independently.
class Dropout : public Cloneable<Dropout> {
 public:
  explicit Dropout(float p = 0.5f, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Dropout"; }
  float p() const { return p_; }

 private:
  float p_;
  Generator gen_;
};

class Identity : public Cloneable<Identity> {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  const char* type_name() const override { return "Identity"; }
};

// Children named "0", "1", … in order, counting parameter-less layers as PyTorch does (VGG's
// features.0, features.1, features.4 …).
class Sequential : public Cloneable<Sequential> {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential& push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Sequential"; }
  int64_t size() const { return size_; }
  Module& at(int64_t index);

 private:
  int64_t size_ = 0;
};

inline std::shared_ptr<Sequential> sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  return std::make_shared<Sequential>(modules);
}

}  // namespace shears::nn
