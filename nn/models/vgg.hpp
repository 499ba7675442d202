// VGG with batch norm (Simonyan & Zisserman, "Very Deep Convolutional Networks", 2015) in
// torchvision's structure and names (torchvision/models/vgg.py, 0.14). `features` is one
// Sequential built from the config list — a number is conv 3×3/pad 1 (with bias) · BN · ReLU, M a
// 2×2 max-pool — so its indices count the BN, ReLU and pool layers: features.0 conv, features.1 BN,
// features.3 pool, features.4 conv … Then one of two heads:
//   imagenet: avgpool AdaptiveAvgPool2d(7) · classifier = 0 Linear(512·7·7, 4096) · 1 ReLU ·
//             2 Dropout · 3 Linear(4096, 4096) · 4 ReLU · 5 Dropout · 6 Linear(4096, classes)
//   cifar:    avgpool AdaptiveAvgPool2d(1) · classifier = Linear(512, classes)
// (the cifar head is kuangliu/pytorch-cifar's, used by the Intra-Fusion checkpoints; their
// features keys equal torchvision's).
// A max-pool whose input is already 1×1 is left out: Fashion-MNIST's 28×28 runs 28→14→7→3→1 and
// skips the final pool, which is the last feature layer in every config, so no index moves.
//
// widths: the numbers of the config list in order, then (imagenet head) the two hidden Linear
// widths. dropout (imagenet head): 0.5 by default.
//
// cnn: the same layout from a configuration given as data (ModelOptions::cfg, e.g.
// "16,32,M,64,64" for the small reference CNN of Intra-Fusion's code), BatchNorm after every conv
// or none (ModelOptions::batch_norm; without it the ReLU follows the conv at index +1), and one of
// two heads (ModelOptions::head): gap = the cifar head above, fc = classifier Linear(C·H·W,
// classes) on the flattened feature map, no pooling.
// Init as torchvision: conv kaiming_normal_(fan_out, relu), bias 0; BN 1/0; Linear N(0, 0.01), bias 0.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.hpp"
#include "nn/models/common.hpp"

namespace shears::nn {

class Vgg : public Cloneable<Vgg> {
 public:
  static constexpr int64_t M = 0;  // a max-pool in a config list (torchvision's 'M')
  enum class Head { imagenet, gap, fc };
  Vgg(const char* name, const std::vector<int64_t>& config, const ModelOptions& options, Head head, bool batch_norm,
      Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "VGG"; }

 private:
  Head head_;
};

// cnn's configuration: options.cfg, or by default the small network of Intra-Fusion's code
// (convs 16-32-64-64 with one max-pool).
std::string cnn_config(const ModelOptions& options);

// "16,32,M,64" ⇄ {16, 32, M, 64}; throws for anything but positive widths and M.
std::vector<int64_t> parse_cnn_config(const std::string& text);
std::string cnn_config_text(const std::vector<int64_t>& config);

std::shared_ptr<Vgg> vgg11_bn(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<Vgg> vgg16_bn(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<Vgg> vgg19_bn(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<Vgg> cnn(const ModelOptions& options, Generator& gen = default_generator());

}  // namespace shears::nn
