// ResNet (He et al., "Deep Residual Learning for Image Recognition", 2016) in torchvision's
// structure and names (torchvision/models/resnet.py, 0.14):
//   conv1 · bn1 · relu · [maxpool] · layer1 … layerK · avgpool · fc
//   BasicBlock: conv1 3×3 (stride) · bn1 · relu · conv2 3×3 · bn2 · + shortcut · relu
//   Bottleneck (v1.5, stride on the 3×3): conv1 1×1 · bn1 · conv2 3×3 · bn2 · conv3 1×1 (4×) · bn3
//   shortcut: identity, or downsample = Sequential(0: conv 1×1 with the stride, 1: BN) where the
//   stride or the width changes.
// Stems: imagenet = conv 7×7/2 + max-pool 3×3/2; cifar = conv 3×3/1 without max-pool.
//
// resnet20/32/56 (the paper's Section 4.2 CIFAR nets: 3 stages of n = 3/5/9 BasicBlocks with 16/32/64
// channels) use the cifar stem and the *projection* shortcut (the paper's option B: 1×1 conv +
// BN where the shape changes) rather than option A's zero padding: the same names and code as
// resnet18/50 (layer2.0.downsample.0.weight), and channel dependencies that structured pruning
// can read from the weights. Hence 272,474 parameters for resnet20 with 10 classes (option-A
// implementations such as akamaster/pytorch_resnet_cifar10 have 269,722; their checkpoints do not
// load here).
//
// widths: the out-channels of every conv in state_dict order — conv1, then per block conv1,
// conv2, [conv3], [downsample.0]. A block's output must keep its input's width when it has no
// downsample, and its downsample's width otherwise (the residual sum).
// Init as torchvision: convs kaiming_normal_(fan_out, relu), BN 1/0, fc PyTorch's default.
#pragma once
#include <memory>

#include "nn/layers.hpp"
#include "nn/models/common.hpp"

namespace shears::nn {

class BasicBlock : public Cloneable<BasicBlock> {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, bool downsample, WidthList& widths, Generator& gen);
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "BasicBlock"; }
  int64_t out_channels() const { return out_channels_; }

 private:
  int64_t out_channels_;
};

class Bottleneck : public Cloneable<Bottleneck> {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, bool downsample, WidthList& widths, Generator& gen);
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "Bottleneck"; }
  int64_t out_channels() const { return out_channels_; }

 private:
  int64_t out_channels_;
};

struct ResNetSpec {
  const char* name;
  bool bottleneck;
  std::vector<int64_t> blocks;  // per stage
  std::vector<int64_t> planes;  // per stage; the stem has planes[0] channels
};

class ResNet : public Cloneable<ResNet> {
 public:
  ResNet(const ResNetSpec& spec, const ModelOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "ResNet"; }

 private:
  int64_t stages_;
};

std::shared_ptr<ResNet> resnet20(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<ResNet> resnet32(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<ResNet> resnet56(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<ResNet> resnet18(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<ResNet> resnet50(const ModelOptions& options, Generator& gen = default_generator());

}  // namespace shears::nn
