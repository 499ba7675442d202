// What every model builder takes, and the pieces the model files share.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "nn/module.hpp"

namespace shears::nn {

// The input regime a model is laid out for: cifar (small inputs: 3×3 stem without max-pool,
// stride-1 stem, small classifier head) or imagenet (torchvision's layout for 224×224).
enum class Variant { cifar, imagenet };
const char* variant_name(Variant v);
Variant parse_variant(const std::string& name);  // "cifar" | "imagenet"

struct ModelOptions {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  int64_t input_size = 32;  // square inputs: 28 for Fashion-MNIST, 32 for CIFAR, 224 for ImageNet
  Variant variant = Variant::cifar;
  // Explicit per-layer widths (each model's header says which layers, in state_dict order);
  // empty: the architecture's own. This is how structurally pruned checkpoints are rebuilt.
  std::vector<int64_t> widths = {};
  float width_multiplier = 1.f;  // mobilenet_v1
  // Classifier dropout (vgg imagenet head, mobilenet_v1); unset: the model's default. Its masks
  // come from a generator of its own, seeded from the one the model is built with.
  std::optional<float> dropout = {};
  std::optional<bool> bias = {};      // mlp / mlpnet Linear biases; unset: the model's default
  bool batch_norm = false;  // mlp / mlpnet: BatchNorm1d after every hidden Linear; cnn: BatchNorm2d after every conv
  // cnn (nn/models/vgg.hpp): the configuration, conv widths and M for a 2×2 max-pool (empty:
  // "16,32,M,64,64"), and the classifier head, gap or fc.
  std::string cfg = {};
  std::string head = "gap";
};

// Hands out a model's widths layer by layer: the explicit ones when given, else the defaults.
// The model says up front how many layers take a width, so a list of the wrong length is refused
// at once ("<model>: expected N widths, got M") rather than running short into a confusing
// residual or depthwise error; finish() asserts the model asked for exactly that many.
class WidthList {
 public:
  WidthList(std::string model, const std::vector<int64_t>& widths, size_t expected);
  int64_t next(int64_t default_width);
  void finish() const;

 private:
  std::string model_;
  std::vector<int64_t> widths_;
  size_t expected_, used_ = 0;
};

// torchvision's model initialisation: every Conv2d weight kaiming_normal_(fan_out, relu) and
// bias 0, BatchNorm weight 1 and bias 0; with linear_normal, every Linear weight N(0, 0.01) and
// bias 0 (VGG, MobileNetV2), else Linear keeps PyTorch's default (ResNet).
void torchvision_init(Module& model, Generator& gen, bool linear_normal);

// Throws unless the image geometry is usable (positive sizes).
void check_image_options(const std::string& model, const ModelOptions& options);

}  // namespace shears::nn
