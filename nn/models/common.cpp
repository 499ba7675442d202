#include "nn/models/common.hpp"

#include "nn/init.hpp"
#include "nn/layers.hpp"

namespace shears::nn {

const char* variant_name(Variant v) { return v == Variant::cifar ? "cifar" : "imagenet"; }

Variant parse_variant(const std::string& name) {
  if (name == "cifar") return Variant::cifar;
  if (name == "imagenet") return Variant::imagenet;
  throw Error("model variant: expected 'cifar' or 'imagenet', got '" + name + "'");
}

WidthList::WidthList(std::string model, const std::vector<int64_t>& widths, size_t expected)
    : model_(std::move(model)), widths_(widths), expected_(expected) {
  SHEARS_CHECK(widths_.empty() || widths_.size() == expected_, model_, "expected ", expected_, " widths, got ",
               widths_.size(), " (one per layer that takes a width, in state_dict order)");
  for (size_t i = 0; i < widths_.size(); ++i)
    SHEARS_CHECK(widths_[i] > 0, model_, "width ", i, " must be positive, got ", widths_[i]);
}

int64_t WidthList::next(int64_t default_width) {
  SHEARS_ASSERT(used_ < expected_);
  size_t i = used_++;
  return widths_.empty() ? default_width : widths_[i];
}

void WidthList::finish() const { SHEARS_ASSERT(used_ == expected_); }

void torchvision_init(Module& model, Generator& gen, bool linear_normal) {
  for (auto& [name, m] : model.named_modules()) {
    bool conv = dynamic_cast<Conv2d*>(m) != nullptr, linear = dynamic_cast<Linear*>(m) != nullptr;
    if (conv || (linear && linear_normal)) {
      Tensor w = m->parameter("weight");
      if (conv) {
        init::kaiming_normal_(w, gen, 0.0, init::Fan::out);
      } else {
        init::normal_(w, 0.f, 0.01f, gen);
      }
      if (m->has_parameter("bias")) m->parameter("bias").zero_();
    } else if (dynamic_cast<BatchNorm*>(m) != nullptr && m->has_parameter("weight")) {
      m->parameter("weight").fill_(1.f);
      m->parameter("bias").zero_();
    }
  }
}

void check_image_options(const std::string& model, const ModelOptions& options) {
  SHEARS_CHECK(options.in_channels > 0 && options.num_classes > 0 && options.input_size > 0, model,
               "in_channels, num_classes and input_size must be positive, got ", options.in_channels, ", ",
               options.num_classes, ", ", options.input_size);
}

}  // namespace shears::nn
