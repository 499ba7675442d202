#include "nn/models/mlp.hpp"

#include <string>

namespace shears::nn {

Mlp::Mlp(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes, bool bias, bool batch_norm,
         Generator& gen)
    : layers_(static_cast<int64_t>(hidden.size()) + 1) {
  int64_t features = in_features;
  for (size_t i = 0; i < hidden.size(); ++i) {
    std::string k = std::to_string(i + 1);
    register_module("fc" + k, std::make_shared<Linear>(features, hidden[i], bias, gen));
    if (batch_norm) register_module("bn" + k, std::make_shared<BatchNorm1d>(hidden[i]));
    features = hidden[i];
  }
  register_module("fc" + std::to_string(layers_), std::make_shared<Linear>(features, num_classes, bias, gen));
}

Tensor Mlp::forward(const Tensor& x) {
  Tensor out = flatten(x, 1);
  for (int64_t i = 1; i < layers_; ++i) {
    std::string k = std::to_string(i);
    out = call("fc" + k, out);
    if (has_child("bn" + k)) out = call("bn" + k, out);
    out = relu(out);
  }
  return call("fc" + std::to_string(layers_), out);
}

namespace {

std::shared_ptr<Mlp> build(const char* name, std::vector<int64_t> default_hidden, bool default_bias,
                           const ModelOptions& options, Generator& gen) {
  check_image_options(name, options);
  // mlpnet's depth is fixed (explicit widths must match it); mlp's is the widths list's.
  size_t layers = default_hidden.empty() ? options.widths.size() : default_hidden.size();
  WidthList widths(name, options.widths, layers);
  std::vector<int64_t> hidden;
  for (size_t i = 0; i < layers; ++i) hidden.push_back(widths.next(i < default_hidden.size() ? default_hidden[i] : 0));
  widths.finish();
  return std::make_shared<Mlp>(options.in_channels * options.input_size * options.input_size, hidden,
                               options.num_classes, options.bias.value_or(default_bias), options.batch_norm, gen);
}

}  // namespace

std::shared_ptr<Mlp> mlpnet(const ModelOptions& options, Generator& gen) {
  return build("mlpnet", {40, 20}, false, options, gen);
}

std::shared_ptr<Mlp> mlp(const ModelOptions& options, Generator& gen) { return build("mlp", {}, true, options, gen); }

std::vector<int64_t> mlp_widths_from_state_dict(const std::vector<safetensors::Entry>& state) {
  std::vector<int64_t> out;
  for (int64_t k = 1;; ++k) {
    const safetensors::Entry* fc = nullptr;
    for (const auto& e : state)
      if (e.name == "fc" + std::to_string(k) + ".weight" || e.name == "fc" + std::to_string(k) + ".weight_orig") fc = &e;
    if (fc == nullptr) break;
    out.push_back(fc->value.size(0));
  }
  SHEARS_CHECK(!out.empty(), "mlp", "the state has no fc1.weight");
  out.pop_back();  // the last Linear is the classifier
  return out;
}

}  // namespace shears::nn
