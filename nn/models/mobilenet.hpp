// MobileNetV1 (Howard et al., "MobileNets", 2017, Table 1): a 3×3 stem and 13 depthwise-separable
// blocks, each depthwise 3×3 conv · BN · ReLU then pointwise 1×1 conv · BN · ReLU (ReLU as in
// the paper, not V2's ReLU6), global average pool, a classifier.
//
// torchvision has no V1, so the names follow its MobileNetV2 (features.N…, a conv-BN-activation
// unit is a Sequential like its Conv2dNormActivation, classifier.1 is the Linear after a Dropout):
//   features.0              stem unit: .0 conv 3×3 (stride 2 imagenet, 1 cifar), .1 BN, .2 ReLU
//   features.1 … features.13 blocks: .0 depthwise unit (.0 conv 3×3 groups=C, .1 BN, .2 ReLU)
//                                    .1 pointwise unit (.0 conv 1×1,            .1 BN, .2 ReLU)
//   classifier              .0 Dropout, .1 Linear
// e.g. features.0.0.weight (32, 3, 3, 3), features.1.0.0.weight (32, 1, 3, 3),
// features.1.1.0.weight (64, 32, 1, 1), features.13.1.1.running_var (1024),
// classifier.1.weight (classes, 1024). tools/mobilenet_v1.py is a PyTorch twin with these keys.
//
// Block strides 1 2 1 2 1 2 1 1 1 1 1 2 1 (Table 1; its second-to-last "dw/s2" row is the known
// typo: 7×7 stays 7×7). The cifar variant only makes the stem stride 1 (32×32 ends at 2×2, as in
// kuangliu/pytorch-cifar's MobileNet). Width multiplier α: each width c becomes torchvision's
// _make_divisible(α·c, 8) (a multiple of 8, at least 8, within 10 % of α·c); for α ∈ {0.25, 0.5,
// 0.75, 1} that is the paper's α·c. dropout: 0 by default (the paper trains small models with
// little regularisation). 4,231,976 parameters at α = 1 with 1000 classes.
//
// widths: the out-channels of every conv in order — stem, then per block depthwise (must equal
// its input) and pointwise. Init as torchvision's MobileNetV2: conv kaiming_normal_(fan_out), BN 1/0,
// Linear N(0, 0.01), biases 0.
#pragma once
#include <memory>

#include "nn/layers.hpp"
#include "nn/models/common.hpp"

namespace shears::nn {

class MobileNetV1 : public Cloneable<MobileNetV1> {
 public:
  explicit MobileNetV1(const ModelOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "MobileNetV1"; }
};

std::shared_ptr<MobileNetV1> mobilenet_v1(const ModelOptions& options, Generator& gen = default_generator());

}  // namespace shears::nn
