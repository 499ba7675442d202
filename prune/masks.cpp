// Exact-count masks from scores (docs/algorithms/README.md#tie-breaking).
#include "prune/masks.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.hpp"

namespace shears::prune {

int64_t prune_count(double sparsity, int64_t d) {
  double x = sparsity * static_cast<double>(d);
  double r = std::round(x);
  if (std::abs(x - r) <= 1e-9 * std::max(1.0, x)) return static_cast<int64_t>(r);
  return static_cast<int64_t>(std::floor(x));
}

int64_t prune_count(double sparsity, int64_t d, bool keep_floor) {
  return keep_floor ? d - prune_count(1.0 - sparsity, d) : prune_count(sparsity, d);
}

namespace {

// Flat indices of `values` in pruning order: ascending score, then ascending index.
std::vector<int64_t> ranking(const std::vector<float>& values) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return values[a] < values[b] || (values[a] == values[b] && a < b);
  });
  return order;
}

}  // namespace

NamedTensors masks_from_scores(const NamedTensors& scores, const SparsityTarget& target) {
  check_target(target);
  std::vector<int64_t> offset{0};
  std::vector<float> all;
  for (auto& [name, s] : scores) {
    const float* p = s.data();
    for (int64_t i = 0; i < s.numel(); ++i)
      SHEARS_CHECK(!std::isnan(p[i]), "prune", "score of '", name, "' is NaN at flat index ", i);
    all.insert(all.end(), p, p + s.numel());
    offset.push_back(static_cast<int64_t>(all.size()));
  }
  NamedTensors masks;
  for (auto& [name, s] : scores) masks.emplace_back(name, Tensor::ones(s.shape()));

  if (target.distribution == Distribution::per_layer) {
    double s = std::min(target.sparsity, target.max_layer_sparsity);
    for (size_t l = 0; l < scores.size(); ++l) {
      std::vector<float> layer(all.begin() + offset[l], all.begin() + offset[l + 1]);
      std::vector<int64_t> order = ranking(layer);
      int64_t k = prune_count(s, static_cast<int64_t>(layer.size()), target.keep_floor);
      float* m = masks[l].second.data();
      for (int64_t i = 0; i < k; ++i) m[order[i]] = 0.f;
    }
    return masks;
  }

  int64_t total = prune_count(target.sparsity, static_cast<int64_t>(all.size()), target.keep_floor);
  std::vector<int64_t> cap(scores.size()), used(scores.size(), 0);
  for (size_t l = 0; l < scores.size(); ++l) cap[l] = prune_count(target.max_layer_sparsity, offset[l + 1] - offset[l]);
  std::vector<int64_t> order = ranking(all);
  int64_t pruned = 0;
  for (size_t r = 0; r < order.size() && pruned < total; ++r) {
    int64_t g = order[r];
    size_t l = static_cast<size_t>(std::upper_bound(offset.begin(), offset.end(), g) - offset.begin() - 1);
    if (used[l] == cap[l]) continue;
    ++used[l];
    ++pruned;
    masks[l].second.data()[g - offset[l]] = 0.f;
  }
  SHEARS_CHECK(pruned == total, "prune", "sparsity ", target.sparsity, " needs ", total,
               " pruned entries but max_layer_sparsity ", target.max_layer_sparsity, " allows only ", pruned,
               "; raise the cap or lower the sparsity");
  return masks;
}

void mark_pruned(const nn::Module& model, NamedTensors& scores) {
  for (auto& [name, s] : scores) {
    if (!model.has_mask(name)) continue;
    Tensor m = model.mask(name);
    SHEARS_CHECK(m.shape() == s.shape(), "prune", "scores of '", name, "' have shape ", to_string(s.shape()),
                 " but its mask has ", to_string(m.shape()));
    float* p = s.data();
    const float* k = m.data();
    for (int64_t i = 0; i < s.numel(); ++i)
      if (k[i] == 0.f) p[i] = -std::numeric_limits<float>::infinity();
  }
}

void apply_masks(nn::Module& model, const NamedTensors& masks) {
  for (auto& [name, m] : masks) {
    model.set_mask(name, m);
    Tensor w = model.parameter(name);
    float* wp = w.data();
    const float* k = m.data();
    for (int64_t i = 0; i < w.numel(); ++i)
      if (k[i] == 0.f) wp[i] = 0.f;
  }
}

void enforce_masks(nn::Module& model) {
  for (auto& [name, m] : model.named_masks()) {
    Tensor w = model.parameter(name);
    float* wp = w.data();
    const float* k = m.data();
    for (int64_t i = 0; i < w.numel(); ++i) wp[i] *= k[i];
  }
}

NamedTensors current_masks(const nn::Module& model, const std::vector<std::string>& names) {
  NamedTensors out;
  for (const std::string& name : names)
    out.emplace_back(name, model.has_mask(name) ? model.mask(name).clone() : Tensor::ones(model.parameter(name).shape()));
  return out;
}

}  // namespace shears::prune
