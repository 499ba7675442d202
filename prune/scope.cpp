// Prunable tensors and sparsity targets (docs/algorithms/README.md#scope,
// docs/algorithms/README.md#sparsity-and-density).
#include "prune/scope.hpp"

#include <algorithm>
#include <regex>

#include "core/error.hpp"
#include "nn/layers.hpp"

namespace shears::prune {
namespace {

std::vector<std::regex> compile(const std::vector<std::string>& patterns, const char* field) {
  std::vector<std::regex> out;
  for (const std::string& p : patterns) {
    try {
      out.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(detail::concat("prune scope: ", field, " pattern '", p, "' is not a valid regex (", e.what(),
                                 ")"));
    }
  }
  return out;
}

bool matches_any(const std::string& name, const std::vector<std::regex>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::regex& r) { return std::regex_match(name, r); });
}

}  // namespace

std::vector<std::string> prunable_parameters(const nn::Module& model, const Scope& scope) {
  std::vector<std::regex> include = compile(scope.include, "include"), exclude = compile(scope.exclude, "exclude");
  std::vector<std::string> layer_weights;
  for (auto& [path, m] : model.named_modules())
    if (dynamic_cast<const nn::Conv2d*>(m) || dynamic_cast<const nn::Linear*>(m))
      layer_weights.push_back(path.empty() ? "weight" : path + ".weight");
  std::string first = layer_weights.empty() ? "" : layer_weights.front();
  std::string last = layer_weights.empty() ? "" : layer_weights.back();

  std::vector<std::string> out;
  std::vector<bool> include_used(include.size(), false);
  for (auto& [name, value] : model.named_parameters()) {
    bool is_layer_weight = std::find(layer_weights.begin(), layer_weights.end(), name) != layer_weights.end();
    bool included = false;
    for (size_t i = 0; i < include.size(); ++i)
      if (std::regex_match(name, include[i])) included = include_used[i] = true;
    if (!is_layer_weight && !included) continue;
    if (matches_any(name, exclude)) continue;
    if (scope.exclude_first_and_last && !included && (name == first || name == last)) continue;
    out.push_back(name);
  }
  for (size_t i = 0; i < include.size(); ++i)
    SHEARS_CHECK(include_used[i], "prune scope", "include pattern '", scope.include[i],
                 "' matches no parameter of the model");
  return out;
}

void check_target(const SparsityTarget& target) {
  SHEARS_CHECK(target.sparsity >= 0.0 && target.sparsity <= 1.0, "prune", "sparsity must be in [0, 1], got ",
               target.sparsity, " (sparsity is the fraction of zeros, not a percentage or a density)");
  SHEARS_CHECK(target.max_layer_sparsity >= 0.0 && target.max_layer_sparsity <= 1.0, "prune",
               "max_layer_sparsity must be in [0, 1], got ", target.max_layer_sparsity);
}

SparsityReport sparsity_report(const nn::Module& model, const std::vector<std::string>& names) {
  SparsityReport report;
  for (const std::string& name : names) {
    Tensor w = model.parameter(name);
    Tensor m = model.has_mask(name) ? model.mask(name) : Tensor();
    LayerSparsity layer{name, w.numel(), 0};
    const float* wp = w.data();
    const float* mp = m.defined() ? m.data() : nullptr;
    for (int64_t i = 0; i < w.numel(); ++i)
      if (wp[i] == 0.f || (mp && mp[i] == 0.f)) ++layer.zeros;
    report.numel += layer.numel;
    report.zeros += layer.zeros;
    report.layers.push_back(layer);
  }
  return report;
}

}  // namespace shears::prune
