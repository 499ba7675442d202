#include "nn/models/vgg.hpp"

#include <algorithm>

namespace shears::nn {

namespace {

constexpr int64_t M = Vgg::M;

// torchvision's cfgs "A", "D" and "E".
const std::vector<int64_t> kVgg11 = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<int64_t> kVgg16 = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
const std::vector<int64_t> kVgg19 = {64,  64,  M,   128, 128, M,   256, 256, 256, 256, M,
                                     512, 512, 512, 512, M,   512, 512, 512, 512, M};

}  // namespace

Vgg::Vgg(const char* name, const std::vector<int64_t>& config, const ModelOptions& options, Generator& gen) {
  check_image_options(name, options);
  size_t convs = std::count_if(config.begin(), config.end(), [](int64_t v) { return v != M; });
  WidthList widths(name, options.widths, convs + (options.variant == Variant::imagenet ? 2 : 0));
  auto features = std::make_shared<Sequential>();
  int64_t channels = options.in_channels, size = options.input_size;
  for (size_t i = 0; i < config.size(); ++i) {
    if (config[i] == M) {
      if (size == 1) {
        SHEARS_CHECK(i + 1 == config.size(), name, "input_size ", options.input_size,
                     " is too small: the feature map is 1×1 before max-pool ", i, " of ", config.size(),
                     " (hint: pad the images to 32×32)");
        continue;
      }
      features->push_back(std::make_shared<MaxPool2d>(2, 2));
      size /= 2;
    } else {
      int64_t width = widths.next(config[i]);
      features->push_back(std::make_shared<Conv2d>(channels, width, 3, Conv2dConfig{.padding = 1}, gen));
      features->push_back(std::make_shared<BatchNorm2d>(width));
      features->push_back(std::make_shared<ReLU>());
      channels = width;
    }
  }
  register_module("features", features);
  if (options.variant == Variant::imagenet) {
    int64_t hidden1 = widths.next(4096), hidden2 = widths.next(4096);
    float p = options.dropout.value_or(0.5f);
    register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(7));
    register_module("classifier", sequential({std::make_shared<Linear>(channels * 7 * 7, hidden1, true, gen),
                                              std::make_shared<ReLU>(), std::make_shared<Dropout>(p, gen),
                                              std::make_shared<Linear>(hidden1, hidden2, true, gen),
                                              std::make_shared<ReLU>(), std::make_shared<Dropout>(p, gen),
                                              std::make_shared<Linear>(hidden2, options.num_classes, true, gen)}));
  } else {
    SHEARS_CHECK(!options.dropout, name, "the cifar head has no dropout");
    register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
    register_module("classifier", std::make_shared<Linear>(channels, options.num_classes, true, gen));
  }
  widths.finish();
  torchvision_init(*this, gen, true);
}

Tensor Vgg::forward(const Tensor& x) {
  return call("classifier", flatten(call("avgpool", call("features", x)), 1));
}

std::shared_ptr<Vgg> vgg11_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg11_bn", kVgg11, options, gen);
}
std::shared_ptr<Vgg> vgg16_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg16_bn", kVgg16, options, gen);
}
std::shared_ptr<Vgg> vgg19_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg19_bn", kVgg19, options, gen);
}

}  // namespace shears::nn
