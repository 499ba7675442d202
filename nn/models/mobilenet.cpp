#include "nn/models/mobilenet.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace shears::nn {

namespace {

struct Block {
  int64_t out, stride;
};
constexpr Block kBlocks[] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}, {512, 1},
                             {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};

// torchvision's _make_divisible(v, 8).
int64_t scaled(int64_t channels, float multiplier) {
  double v = channels * static_cast<double>(multiplier);
  SHEARS_CHECK(v <= 0x1p53, "mobilenet_v1", "width_multiplier ", multiplier, " makes a layer ", v,
               " channels wide");  // (beyond 2^53 the conversion below would overflow)
  int64_t rounded = std::max<int64_t>(8, static_cast<int64_t>(v + 4) / 8 * 8);
  return rounded < 0.9 * v ? rounded + 8 : rounded;
}

std::shared_ptr<Sequential> conv_bn_relu(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
                                         Generator& gen) {
  Conv2dConfig config{.stride = stride, .padding = kernel / 2, .groups = groups, .bias = false};
  return sequential({std::make_shared<Conv2d>(in, out, kernel, config, gen), std::make_shared<BatchNorm2d>(out),
                     std::make_shared<ReLU>()});
}

}  // namespace

MobileNetV1::MobileNetV1(const ModelOptions& options, Generator& gen) {
  check_image_options("mobilenet_v1", options);
  SHEARS_CHECK(options.width_multiplier > 0.f, "mobilenet_v1", "width_multiplier must be positive, got ",
               options.width_multiplier);
  WidthList widths("mobilenet_v1", options.widths, 1 + 2 * std::size(kBlocks));  // stem, then dw + pw per block
  float alpha = options.width_multiplier;
  auto features = std::make_shared<Sequential>();
  int64_t channels = widths.next(scaled(32, alpha));
  features->push_back(
      conv_bn_relu(options.in_channels, channels, 3, options.variant == Variant::imagenet ? 2 : 1, 1, gen));
  for (const Block& b : kBlocks) {
    int64_t depthwise = widths.next(channels), pointwise = widths.next(scaled(b.out, alpha));
    SHEARS_CHECK(depthwise == channels, "mobilenet_v1", "block ", features->size(), ": a depthwise conv keeps its ",
                 channels, " input channels, got width ", depthwise);
    features->push_back(sequential({conv_bn_relu(channels, channels, 3, b.stride, channels, gen),
                                    conv_bn_relu(channels, pointwise, 1, 1, 1, gen)}));
    channels = pointwise;
  }
  widths.finish();
  register_module("features", features);
  register_module("classifier", sequential({std::make_shared<Dropout>(options.dropout.value_or(0.f), gen),
                                            std::make_shared<Linear>(channels, options.num_classes, true, gen)}));
  torchvision_init(*this, gen, true);
}

Tensor MobileNetV1::forward(const Tensor& x) {
  Tensor out = call("features", x);
  return call("classifier", flatten(adaptive_avg_pool2d(out, {1, 1}), 1));
}

std::shared_ptr<MobileNetV1> mobilenet_v1(const ModelOptions& options, Generator& gen) {
  return std::make_shared<MobileNetV1>(options, gen);
}

}  // namespace shears::nn
