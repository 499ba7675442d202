#include "nn/models/vgg.hpp"

#include <algorithm>
#include <charconv>

namespace shears::nn {

namespace {

constexpr int64_t M = Vgg::M;

// torchvision's cfgs "A", "D" and "E".
const std::vector<int64_t> kVgg11 = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<int64_t> kVgg16 = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
const std::vector<int64_t> kVgg19 = {64,  64,  M,   128, 128, M,   256, 256, 256, 256, M,
                                     512, 512, 512, 512, M,   512, 512, 512, 512, M};

Vgg::Head torchvision_head(const ModelOptions& options) {
  return options.variant == Variant::imagenet ? Vgg::Head::imagenet : Vgg::Head::gap;
}

}  // namespace

Vgg::Vgg(const char* name, const std::vector<int64_t>& config, const ModelOptions& options, Head head, bool batch_norm,
         Generator& gen)
    : head_(head) {
  check_image_options(name, options);
  size_t convs = std::count_if(config.begin(), config.end(), [](int64_t v) { return v != M; });
  WidthList widths(name, options.widths, convs + (head == Head::imagenet ? 2 : 0));
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
      if (batch_norm) features->push_back(std::make_shared<BatchNorm2d>(width));
      features->push_back(std::make_shared<ReLU>());
      channels = width;
    }
  }
  register_module("features", features);
  if (head == Head::fc) {
    SHEARS_CHECK(!options.dropout, name, "the fc head has no dropout");
    register_module("classifier", std::make_shared<Linear>(channels * size * size, options.num_classes, true, gen));
  } else if (head == Head::imagenet) {
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
  Tensor features = call("features", x);
  return call("classifier", flatten(head_ == Head::fc ? features : call("avgpool", features), 1));
}

std::vector<int64_t> parse_cnn_config(const std::string& text) {
  std::vector<int64_t> config;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    int64_t width = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), width);
    const bool number = !item.empty() && ec == std::errc() && end == item.data() + item.size();
    SHEARS_CHECK(item == "M" || (number && width > 0 && width <= (int64_t{1} << 20)), "cfg",
                 "expected conv widths (positive numbers) and M for a max-pool, separated by commas, got '", item,
                 "' in '", text, "'");
    config.push_back(item == "M" ? M : width);
    start = comma + 1;
  }
  SHEARS_CHECK(std::count_if(config.begin(), config.end(), [](int64_t v) { return v != M; }) > 0, "cfg",
               "needs at least one conv width, got '", text, "'");
  return config;
}

std::string cnn_config_text(const std::vector<int64_t>& config) {
  std::string text;
  for (int64_t v : config) {
    if (!text.empty()) text += ',';
    text += v == M ? std::string("M") : std::to_string(v);
  }
  return text;
}

std::shared_ptr<Vgg> vgg11_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg11_bn", kVgg11, options, torchvision_head(options), true, gen);
}
std::shared_ptr<Vgg> vgg16_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg16_bn", kVgg16, options, torchvision_head(options), true, gen);
}
std::shared_ptr<Vgg> vgg19_bn(const ModelOptions& options, Generator& gen) {
  return std::make_shared<Vgg>("vgg19_bn", kVgg19, options, torchvision_head(options), true, gen);
}

std::string cnn_config(const ModelOptions& options) { return options.cfg.empty() ? "16,32,M,64,64" : options.cfg; }

std::shared_ptr<Vgg> cnn(const ModelOptions& options, Generator& gen) {
  SHEARS_CHECK(options.variant == Variant::cifar, "cnn", "has no imagenet variant: its head is gap or fc");
  SHEARS_CHECK(options.head == "gap" || options.head == "fc", "cnn", "head is gap or fc, got '", options.head, "'");
  return std::make_shared<Vgg>("cnn", parse_cnn_config(cnn_config(options)), options,
                               options.head == "fc" ? Vgg::Head::fc : Vgg::Head::gap, options.batch_norm, gen);
}

}  // namespace shears::nn
