#include "nn/summary.hpp"

#include <map>

#include "core/autograd.hpp"
#include "core/ops/conv2d.hpp"
#include "nn/layers.hpp"

namespace shears::nn {

namespace {

std::string conv_paths(const Conv2d& conv, const Shape& input) {
  const ConvGeometry g = conv_geometry(input, conv.parameter("weight").shape(), conv.options());
  std::string paths;
  for (ConvPass pass : {ConvPass::forward, ConvPass::input_gradient, ConvPass::weight_gradient}) {
    if (!paths.empty()) paths += ' ';
    paths += conv_path_name(conv_path(g, pass));
  }
  return paths;
}

}  // namespace

Summary summarize(Module& model, const Shape& input_shape) {
  std::map<const Module*, std::string> names;
  for (auto& [name, m] : model.named_modules()) names.emplace(m, name);

  Summary s;
  s.input_shape = input_shape;
  s.parameters = model.num_parameters();
  ForwardObserver observer([&](const Module& m, const Tensor& input, const Tensor& output) {
    if (!m.named_children().empty()) return;
    auto it = names.find(&m);
    LayerSummary row{it != names.end() ? it->second : "",
                     m.type_name(),
                     output.shape(),
                     m.num_parameters(),
                     m.macs(input.shape(), output.shape()),
                     ""};
    if (auto* conv = dynamic_cast<const Conv2d*>(&m)) row.conv_paths = conv_paths(*conv, input.shape());
    s.macs += row.macs;
    s.layers.push_back(std::move(row));
  });

  // Restore each module's own mode afterwards (parents first: train() recurses).
  std::vector<std::pair<Module*, bool>> modes;
  for (auto& [name, m] : model.named_modules()) modes.emplace_back(m, m->is_training());
  auto restore = [&] {
    for (auto& [m, training] : modes) m->train(training);
  };
  model.eval();
  try {
    NoGradGuard no_grad;
    model(Tensor::zeros(input_shape));
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return s;
}

}  // namespace shears::nn
