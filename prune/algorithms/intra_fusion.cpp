// Intra-Fusion (docs/algorithms/intra-fusion.md; see intra_fusion.hpp for the departures).
#include "prune/algorithms/intra_fusion.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "prune/bn_fold.hpp"
#include "prune/structured.hpp"

namespace shears::prune {
namespace {

bool fused_role(Role r) { return r == Role::producer || r == Role::consumer; }

// The weight slice of a producer or consumer member (its bias, if any, is not a descriptor).
const Slice& weight_slice(const GroupMember& m) {
  for (const Slice& s : m.slices)
    if (s.tensor.size() >= 6 && s.tensor.compare(s.tensor.size() - 6, 6, "weight") == 0) return s;
  throw Error(detail::concat("intra_fusion: member '", m.module, "' has no weight slice"));
}

// Flat indices of every channel of `slice` in a tensor of `shape`.
std::vector<std::vector<int64_t>> channel_indices(const Shape& shape, const Slice& slice, int64_t channels) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) for_each_in_channel(shape, slice, c, [&](int64_t i) { out[c].push_back(i); });
  return out;
}

std::vector<double> masses(FusionMass kind, const std::vector<float>& imp, const std::vector<int64_t>& channels,
                           int64_t n, int64_t k, const std::vector<bool>& is_kept) {
  std::vector<double> m;
  for (int64_t c : channels) {
    switch (kind) {
      case FusionMass::uniform: m.push_back(1.0); break;
      case FusionMass::importance:
        SHEARS_CHECK(imp[c] >= 0, "intra_fusion", "importance masses need non-negative scores, channel ", c, " has ",
                     imp[c]);
        m.push_back(imp[c]);
        break;
      case FusionMass::radical: m.push_back(is_kept[c] ? static_cast<double>(n) / static_cast<double>(k) : 1.0); break;
    }
  }
  double s = std::accumulate(m.begin(), m.end(), 0.0);
  SHEARS_CHECK(s > 0, "intra_fusion", "importance masses need a positive total (all scores are zero)");
  for (double& v : m) v /= s;
  return m;
}

}  // namespace

ot::Matrix selection_matrix(int64_t channels, const std::vector<int64_t>& kept) {
  ot::Matrix s(static_cast<int64_t>(kept.size()), channels);
  for (size_t q = 0; q < kept.size(); ++q) s(static_cast<int64_t>(q), kept[q]) = 1.0;
  return s;
}

FusionPlan plan_fusion(const nn::Module& model, const Group& group, double sparsity, const IntraFusionOptions& options) {
  SHEARS_CHECK(sparsity >= 0 && sparsity < 1, "intra_fusion", "channel sparsity must be in [0, 1), got ", sparsity);
  const int64_t n = group.channels;
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(n) * (1.0 - sparsity))));
  std::vector<float> imp = options.importance(model, group);
  SHEARS_CHECK(static_cast<int64_t>(imp.size()) == n, "intra_fusion", "importance gave ", imp.size(),
               " scores for a group of ", n, " channels");
  for (float v : imp) SHEARS_CHECK(!std::isnan(v), "intra_fusion", "NaN importance in the group of ", group.members.front().module);

  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return imp[a] < imp[b]; });
  std::vector<int64_t> kept(order.begin() + (n - k), order.end());
  std::sort(kept.begin(), kept.end());
  return plan_fusion(model, group, imp, kept, options);
}

FusionPlan plan_fusion(const nn::Module& model, const Group& group, const std::vector<float>& imp,
                       const std::vector<int64_t>& kept, const IntraFusionOptions& options) {
  SHEARS_CHECK(options.p >= 1, "intra_fusion", "cost norm p must be at least 1, got ", options.p);
  const int64_t n = group.channels, k = static_cast<int64_t>(kept.size());
  SHEARS_CHECK(static_cast<int64_t>(imp.size()) == n, "intra_fusion", imp.size(), " scores for a group of ", n,
               " channels");
  SHEARS_CHECK(k >= 1 && std::is_sorted(kept.begin(), kept.end()) && std::adjacent_find(kept.begin(), kept.end()) == kept.end(),
               "intra_fusion", "the kept channels must be ascending, distinct and at least one");
  FusionPlan plan;
  plan.kept = kept;
  std::vector<bool> is_kept(n, false);
  for (int64_t c : plan.kept) {
    SHEARS_CHECK(c >= 0 && c < n, "intra_fusion", "kept channel ", c, " out of range for a group of ", n);
    is_kept[c] = true;
  }
  if (options.merge == ChannelMerge::select) {
    plan.producer = plan.consumer = selection_matrix(n, plan.kept);
    return plan;
  }

  // Descriptors (N×D, float64), each divided by its ℓ2 norm (a zero descriptor stays zero).
  std::vector<std::vector<double>> u(static_cast<size_t>(n));
  for (const GroupMember& m : group.members) {
    if (!fused_role(m.role)) continue;
    const Slice& s = weight_slice(m);
    Tensor w = model.parameter(s.tensor);
    for (int64_t c = 0; c < n; ++c) for_each_in_channel(w.shape(), s, c, [&](int64_t i) { u[c].push_back(w.data()[i]); });
  }
  for (auto& row : u) {
    double norm = std::sqrt(std::inner_product(row.begin(), row.end(), row.begin(), 0.0));
    if (norm > 0)
      for (double& v : row) v /= norm;
  }
  ot::Matrix& cost = plan.cost;
  cost = ot::Matrix(n, k);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t q = 0; q < k; ++q) {
      const auto &x = u[j], &y = u[plan.kept[q]];
      double s = 0.0;
      for (size_t e = 0; e < x.size(); ++e) s += std::pow(std::abs(x[e] - y[e]), options.p);
      cost(j, q) = std::pow(s, 1.0 / options.p);
    }
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), int64_t{0});
  plan.transport = ot::emd(masses(options.source_mass, imp, all, n, k, is_kept),
                           masses(options.target_mass, imp, plan.kept, n, k, is_kept), cost);

  // T = Πᵀ with unit column sums: every channel hands out a total weight of 1.
  std::vector<double> handed = plan.transport.row_sums();
  plan.consumer = ot::Matrix(k, n);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t q = 0; q < k; ++q) plan.consumer(q, j) = plan.transport(j, q) / handed[j];
  plan.producer = plan.consumer;
  if (options.normalization == FusionNormalization::function_preserving) {
    std::vector<double> rows = plan.consumer.row_sums();
    for (int64_t q = 0; q < k; ++q)
      for (int64_t j = 0; j < n; ++j) plan.producer(q, j) /= rows[q];
  }
  return plan;
}

void apply_fusion(nn::Module& model, const Group& group, const std::vector<int64_t>& kept, const ot::Matrix& producer,
                  const ot::Matrix& consumer, bool preserve_dimensions) {
  const int64_t n = group.channels, k = static_cast<int64_t>(kept.size());
  for (const ot::Matrix* t : {&producer, &consumer})
    SHEARS_CHECK(t->rows == k && t->cols == n, "apply_fusion", "fusion matrix is ", t->rows, "x", t->cols, ", expected ",
                 k, "x", n);
  std::vector<bool> is_kept(n, false);
  for (int64_t c : kept) {
    SHEARS_CHECK(c >= 0 && c < n && !is_kept[c], "apply_fusion", "kept channel ", c,
                 " is out of range or repeated for a group of ", n);
    is_kept[c] = true;
  }
  // Fused channel q is written at position kept[q]; remove_channels then drops the others (and
  // cuts BatchNorm and depthwise members by index).
  for (const GroupMember& m : group.members) {
    if (!fused_role(m.role)) continue;
    const ot::Matrix& t = m.role == Role::producer ? producer : consumer;
    for (const Slice& s : m.slices) {
      SHEARS_CHECK(!model.has_mask(s.tensor), "apply_fusion", "'", s.tensor,
                   "' is masked: fusing would mix masked and unmasked weights (hint: remove_mask first)");
      Tensor old = model.parameter(s.tensor);
      Tensor fused = old.clone();
      auto index = channel_indices(old.shape(), s, n);
      std::vector<double> acc;
      for (int64_t q = 0; q < k; ++q) {
        acc.assign(index[0].size(), 0.0);
        for (int64_t j = 0; j < n; ++j) {
          double w = t(q, j);
          if (w == 0.0) continue;
          for (size_t e = 0; e < acc.size(); ++e) acc[e] += w * old.data()[index[j][e]];
        }
        for (size_t e = 0; e < acc.size(); ++e) fused.data()[index[kept[q]][e]] = static_cast<float>(acc[e]);
      }
      model.set_parameter(s.tensor, fused);
    }
  }
  std::vector<int64_t> pruned;
  for (int64_t c = 0; c < n; ++c)
    if (!is_kept[c]) pruned.push_back(c);
  if (pruned.empty()) return;
  if (!preserve_dimensions) {
    remove_channels(model, group, pruned);
    return;
  }
  // A zero producer channel stays zero through the folded (identity) BatchNorm, and zero consumer
  // columns ignore it anyway: the width is kept, the function is the smaller network's.
  for (const GroupMember& m : group.members) {
    if (m.role == Role::norm) continue;
    for (const Slice& s : m.slices) {
      if (s.buffer) continue;
      Tensor value = model.parameter(s.tensor).clone();
      for (int64_t c : pruned) for_each_in_channel(value.shape(), s, c, [&](int64_t i) { value.data()[i] = 0.f; });
      model.set_parameter(s.tensor, value);
    }
  }
}

FusionPlan intra_fusion_prune(nn::Module& model, const Shape& input_shape, int64_t group_index, double sparsity,
                              const IntraFusionOptions& options) {
  std::vector<FoldedPair> folded = fold_batch_norms(model, input_shape);
  std::vector<Group> groups = dependency_groups(model, input_shape);
  SHEARS_CHECK(group_index >= 0 && group_index < static_cast<int64_t>(groups.size()), "intra_fusion", "group index ",
               group_index, " out of range: the model has ", groups.size(), " prunable groups");
  const Group& group = groups[groups.size() - 1 - static_cast<size_t>(group_index)];
  FusionPlan plan = plan_fusion(model, group, sparsity, options);
  apply_fusion(model, group, plan.kept, plan.producer, plan.consumer, options.preserve_dimensions);
  restore_bias_free_producers(model, folded);
  return plan;
}

NetworkFusion intra_fusion_prune_network(nn::Module& model, const Shape& input_shape, const ChannelTarget& target,
                                         const IntraFusionOptions& options, const std::vector<std::string>& ignored) {
  std::vector<FoldedPair> folded = fold_batch_norms(model, input_shape);
  NetworkFusion out;
  out.groups = dependency_groups(model, input_shape, ignored);
  // Scores once, on the folded model before any change: they drive both the selection and the
  // importance masses, and later groups must not see the earlier groups' fused weights.
  std::vector<std::vector<float>> scores;
  for (const Group& g : out.groups) scores.push_back(options.importance(model, g));
  Importance cached = [&](const nn::Module&, const Group& g) {
    return scores[static_cast<size_t>(&g - out.groups.data())];
  };
  out.removed = select_channels(model, out.groups, cached, target);
  for (size_t g = 0; g < out.groups.size(); ++g) {
    if (out.removed[g].empty()) continue;
    const Group& group = out.groups[g];
    std::vector<int64_t> kept;
    for (int64_t c = 0, r = 0; c < group.channels; ++c) {
      if (r < static_cast<int64_t>(out.removed[g].size()) && out.removed[g][r] == c)
        ++r;
      else
        kept.push_back(c);
    }
    FusionPlan plan = plan_fusion(model, group, scores[g], kept, options);
    apply_fusion(model, group, plan.kept, plan.producer, plan.consumer, options.preserve_dimensions);
  }
  restore_bias_free_producers(model, folded);
  return out;
}

}  // namespace shears::prune
