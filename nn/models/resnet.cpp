#include "nn/models/resnet.hpp"

#include <string>

namespace shears::nn {

namespace {

std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride, Generator& gen) {
  return std::make_shared<Conv2d>(in, out, 3, Conv2dConfig{.stride = stride, .padding = 1, .bias = false}, gen);
}

std::shared_ptr<Conv2d> conv1x1(int64_t in, int64_t out, int64_t stride, Generator& gen) {
  return std::make_shared<Conv2d>(in, out, 1, Conv2dConfig{.stride = stride, .bias = false}, gen);
}

// torchvision's downsample: a 1×1 strided conv and its BN (`downsample.0`, `downsample.1`).
std::shared_ptr<Sequential> projection_shortcut(int64_t in, int64_t out, int64_t stride, Generator& gen) {
  return sequential({conv1x1(in, out, stride, gen), std::make_shared<BatchNorm2d>(out)});
}

// The residual sum needs the block's output width to equal its shortcut's.
void check_residual(int64_t out, int64_t shortcut, bool downsample, const char* block) {
  SHEARS_CHECK(out == shortcut, block, "the last conv's width ", out, " must equal the shortcut's width ",
               shortcut, downsample ? " (the downsample's)" : " (the block's input: it has no downsample)");
}

}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, bool downsample, WidthList& widths,
                       Generator& gen) {
  int64_t width1 = widths.next(planes), width2 = widths.next(planes);
  register_module("conv1", conv3x3(in_channels, width1, stride, gen));
  register_module("bn1", std::make_shared<BatchNorm2d>(width1));
  register_module("conv2", conv3x3(width1, width2, 1, gen));
  register_module("bn2", std::make_shared<BatchNorm2d>(width2));
  int64_t shortcut = in_channels;
  if (downsample) {
    shortcut = widths.next(planes);
    register_module("downsample", projection_shortcut(in_channels, shortcut, stride, gen));
  }
  check_residual(width2, shortcut, downsample, "BasicBlock");
  out_channels_ = width2;
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(call("bn1", call("conv1", x)));
  out = call("bn2", call("conv2", out));
  Tensor identity = has_child("downsample") ? call("downsample", x) : x;
  return relu(out + identity);
}

Bottleneck::Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, bool downsample, WidthList& widths,
                       Generator& gen) {
  int64_t width1 = widths.next(planes), width2 = widths.next(planes), width3 = widths.next(planes * expansion);
  register_module("conv1", conv1x1(in_channels, width1, 1, gen));
  register_module("bn1", std::make_shared<BatchNorm2d>(width1));
  register_module("conv2", conv3x3(width1, width2, stride, gen));
  register_module("bn2", std::make_shared<BatchNorm2d>(width2));
  register_module("conv3", conv1x1(width2, width3, 1, gen));
  register_module("bn3", std::make_shared<BatchNorm2d>(width3));
  int64_t shortcut = in_channels;
  if (downsample) {
    shortcut = widths.next(planes * expansion);
    register_module("downsample", projection_shortcut(in_channels, shortcut, stride, gen));
  }
  check_residual(width3, shortcut, downsample, "Bottleneck");
  out_channels_ = width3;
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu(call("bn1", call("conv1", x)));
  out = relu(call("bn2", call("conv2", out)));
  out = call("bn3", call("conv3", out));
  Tensor identity = has_child("downsample") ? call("downsample", x) : x;
  return relu(out + identity);
}

ResNet::ResNet(const ResNetSpec& spec, const ModelOptions& options, Generator& gen)
    : stages_(static_cast<int64_t>(spec.blocks.size())) {
  check_image_options(spec.name, options);
  // Where shortcuts project is decided on the unpruned widths, as torchvision's _make_layer does,
  // so explicit widths never add or drop a downsample: where the stride or the unpruned width changes.
  int64_t expansion = spec.bottleneck ? Bottleneck::expansion : BasicBlock::expansion;
  auto stride_of = [](int64_t stage, int64_t block) -> int64_t { return stage > 0 && block == 0 ? 2 : 1; };
  auto has_downsample = [&](int64_t stage, int64_t block) {
    int64_t unpruned_in = block > 0 ? spec.planes[stage] * expansion
                          : stage > 0 ? spec.planes[stage - 1] * expansion
                                      : spec.planes[0];
    return stride_of(stage, block) != 1 || unpruned_in != spec.planes[stage] * expansion;
  };
  size_t convs = 1;  // conv1, then per block conv1, conv2, [conv3], [downsample.0]
  for (int64_t s = 0; s < stages_; ++s)
    for (int64_t b = 0; b < spec.blocks[s]; ++b) convs += (spec.bottleneck ? 3 : 2) + has_downsample(s, b);
  WidthList widths(spec.name, options.widths, convs);
  int64_t channels = widths.next(spec.planes[0]);
  if (options.variant == Variant::imagenet) {
    register_module("conv1", std::make_shared<Conv2d>(options.in_channels, channels, 7,
                                                      Conv2dConfig{.stride = 2, .padding = 3, .bias = false}, gen));
    register_module("bn1", std::make_shared<BatchNorm2d>(channels));
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  } else {
    register_module("conv1", conv3x3(options.in_channels, channels, 1, gen));
    register_module("bn1", std::make_shared<BatchNorm2d>(channels));
  }

  for (int64_t s = 0; s < stages_; ++s) {
    auto layer = std::make_shared<Sequential>();
    for (int64_t b = 0; b < spec.blocks[s]; ++b) {
      int64_t stride = stride_of(s, b), planes = spec.planes[s];
      bool downsample = has_downsample(s, b);
      try {
        if (spec.bottleneck) {
          auto block = std::make_shared<Bottleneck>(channels, planes, stride, downsample, widths, gen);
          channels = block->out_channels();
          layer->push_back(block);
        } else {
          auto block = std::make_shared<BasicBlock>(channels, planes, stride, downsample, widths, gen);
          channels = block->out_channels();
          layer->push_back(block);
        }
      } catch (const Error& e) {
        throw Error(std::string(spec.name) + ": layer" + std::to_string(s + 1) + "." + std::to_string(b) + ": " +
                    e.what());
      }
    }
    register_module("layer" + std::to_string(s + 1), layer);
  }
  widths.finish();
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
  register_module("fc", std::make_shared<Linear>(channels, options.num_classes, true, gen));
  torchvision_init(*this, gen, false);
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor out = relu(call("bn1", call("conv1", x)));
  if (has_child("maxpool")) out = call("maxpool", out);
  for (int64_t s = 1; s <= stages_; ++s) out = call("layer" + std::to_string(s), out);
  return call("fc", flatten(call("avgpool", out), 1));
}

namespace {

std::shared_ptr<ResNet> cifar_resnet(const char* name, int64_t n, const ModelOptions& options, Generator& gen) {
  SHEARS_CHECK(options.variant == Variant::cifar, name, "is a CIFAR network (3×3 stem, 16/32/64 channels); the "
                                                        "imagenet variant exists for resnet18 and resnet50");
  return std::make_shared<ResNet>(ResNetSpec{name, false, {n, n, n}, {16, 32, 64}}, options, gen);
}

}  // namespace

std::shared_ptr<ResNet> resnet20(const ModelOptions& options, Generator& gen) {
  return cifar_resnet("resnet20", 3, options, gen);
}
std::shared_ptr<ResNet> resnet32(const ModelOptions& options, Generator& gen) {
  return cifar_resnet("resnet32", 5, options, gen);
}
std::shared_ptr<ResNet> resnet56(const ModelOptions& options, Generator& gen) {
  return cifar_resnet("resnet56", 9, options, gen);
}
std::shared_ptr<ResNet> resnet18(const ModelOptions& options, Generator& gen) {
  return std::make_shared<ResNet>(ResNetSpec{"resnet18", false, {2, 2, 2, 2}, {64, 128, 256, 512}}, options, gen);
}
std::shared_ptr<ResNet> resnet50(const ModelOptions& options, Generator& gen) {
  return std::make_shared<ResNet>(ResNetSpec{"resnet50", true, {3, 4, 6, 3}, {64, 128, 256, 512}}, options, gen);
}

}  // namespace shears::nn
