// Channel selection and physical removal (docs/algorithms/baselines.md#channel-selection and
// docs/algorithms/baselines.md#channel-removal).
#include "prune/structured.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "nn/layers.hpp"
#include "prune/masks.hpp"

namespace shears::prune {
namespace {

int64_t max_removable(const ChannelTarget& t, int64_t n) { return std::min(prune_count(t.max_ratio, n), n - 1); }

// Removes fewer channels so that the kept count is a multiple of round_to (or all of them).
int64_t rounded(int64_t remove, int64_t n, int64_t round_to) {
  int64_t kept = n - remove;
  kept = std::min(n, (kept + round_to - 1) / round_to * round_to);
  return n - kept;
}

// `t` restricted to the kept channels of `slice`.
Tensor cut(const Tensor& t, const Slice& slice, const std::vector<int64_t>& keep) {
  Shape shape = t.shape();
  shape[slice.dim] = static_cast<int64_t>(keep.size()) * slice.span;
  Tensor out = Tensor::empty(shape);
  int64_t k = 0;
  for (int64_t c : keep) {
    // Elements of channel c in the source, in order, land at channel position k in the result.
    std::vector<int64_t> src, dst;
    for_each_in_channel(t.shape(), slice, c, [&](int64_t i) { src.push_back(i); });
    for_each_in_channel(shape, slice, k++, [&](int64_t i) { dst.push_back(i); });
    for (size_t i = 0; i < src.size(); ++i) out.data()[dst[i]] = t.data()[src[i]];
  }
  return out;
}

void cut_parameter(nn::Module& model, const Slice& s, const std::vector<int64_t>& keep) {
  if (s.buffer) {
    model.set_buffer(s.tensor, cut(model.buffer(s.tensor), s, keep));
    return;
  }
  Tensor mask;
  if (model.has_mask(s.tensor)) {
    mask = cut(model.mask(s.tensor), s, keep);
    model.remove_mask(s.tensor);
  }
  model.set_parameter(s.tensor, cut(model.parameter(s.tensor), s, keep));
  if (mask.defined()) model.set_mask(s.tensor, mask);
}

void replace_depthwise(nn::Module& model, const GroupMember& m, const std::vector<int64_t>& keep) {
  SHEARS_CHECK(!m.module.empty(), "remove_channels", "the model itself is a depthwise conv: nothing to couple");
  auto& old = model.get<nn::Conv2d>(m.module);
  int64_t k = static_cast<int64_t>(keep.size());
  nn::Conv2dConfig config = old.config();
  config.groups = k;
  Tensor w = old.parameter("weight");
  Generator unused_init(0);  // the weights are overwritten; keep the default generator untouched
  auto fresh = std::make_shared<nn::Conv2d>(k, k, nn::Size2(w.size(2), w.size(3)), config, unused_init);
  fresh->train(old.is_training());
  for (const Slice& s : m.slices) {
    std::string local = s.tensor.substr(s.tensor.rfind('.') + 1);
    Slice local_slice{local, s.dim, s.span, false};
    fresh->set_parameter(local, cut(old.parameter(local), local_slice, keep));
    if (old.has_mask(local)) fresh->set_mask(local, cut(old.mask(local), local_slice, keep));
  }
  model.replace(m.module, fresh);
}

}  // namespace

std::vector<std::vector<int64_t>> select_channels(const nn::Module& model, const std::vector<Group>& groups,
                                                  const Importance& importance, const ChannelTarget& target) {
  SHEARS_CHECK(target.ratio >= 0 && target.ratio <= 1 && target.max_ratio >= 0 && target.max_ratio <= 1,
               "select_channels", "ratio and max_ratio must be in [0, 1], got ", target.ratio, " and ",
               target.max_ratio);
  SHEARS_CHECK(target.round_to >= 1, "select_channels", "round_to must be at least 1, got ", target.round_to);
  std::vector<std::vector<float>> scores;
  for (const Group& g : groups) {
    scores.push_back(importance(model, g));
    SHEARS_CHECK(static_cast<int64_t>(scores.back().size()) == g.channels, "select_channels", "importance gave ",
                 scores.back().size(), " scores for a group of ", g.channels, " channels (", g.members.front().module,
                 ")");
    for (float v : scores.back())
      SHEARS_CHECK(!std::isnan(v), "select_channels", "NaN importance in the group of ", g.members.front().module);
  }
  // (group, channel) pairs in removal order: ascending score, then group, then channel.
  auto order_of = [&](std::vector<std::pair<size_t, int64_t>> items) {
    std::stable_sort(items.begin(), items.end(), [&](const auto& a, const auto& b) {
      return scores[a.first][a.second] < scores[b.first][b.second];
    });
    return items;
  };
  std::vector<int64_t> count(groups.size(), 0);
  std::vector<std::vector<int64_t>> chosen(groups.size());
  if (target.distribution == Distribution::per_layer) {
    for (size_t g = 0; g < groups.size(); ++g) {
      std::vector<std::pair<size_t, int64_t>> items;
      for (int64_t c = 0; c < groups[g].channels; ++c) items.emplace_back(g, c);
      int64_t k = std::min(prune_count(target.ratio, groups[g].channels), max_removable(target, groups[g].channels));
      for (auto& [gi, c] : order_of(items)) {
        if (static_cast<int64_t>(chosen[g].size()) == k) break;
        chosen[g].push_back(c);
      }
    }
  } else {
    std::vector<std::pair<size_t, int64_t>> items;
    int64_t all = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      all += groups[g].channels;
      for (int64_t c = 0; c < groups[g].channels; ++c) items.emplace_back(g, c);
    }
    int64_t total = prune_count(target.ratio, all), taken = 0;
    for (auto& [g, c] : order_of(items)) {
      if (taken == total) break;
      if (static_cast<int64_t>(chosen[g].size()) == max_removable(target, groups[g].channels)) continue;
      chosen[g].push_back(c);
      ++taken;
    }
    SHEARS_CHECK(taken == total, "select_channels", "ratio ", target.ratio, " needs ", total,
                 " channels but the per-group cap (max_ratio ", target.max_ratio,
                 ", one channel kept per group) allows ", taken);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    // Rounding drops the highest-scored of the chosen channels (they come last in chosen order).
    chosen[g].resize(rounded(static_cast<int64_t>(chosen[g].size()), groups[g].channels, target.round_to));
    std::sort(chosen[g].begin(), chosen[g].end());
  }
  return chosen;
}

void remove_channels(nn::Module& model, const Group& group, const std::vector<int64_t>& channels) {
  std::vector<bool> drop(group.channels, false);
  for (int64_t c : channels) {
    SHEARS_CHECK(c >= 0 && c < group.channels, "remove_channels", "channel ", c, " out of range for a group of ",
                 group.channels);
    drop[c] = true;
  }
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < group.channels; ++c)
    if (!drop[c]) keep.push_back(c);
  SHEARS_CHECK(!keep.empty(), "remove_channels", "cannot remove all ", group.channels, " channels of the group of ",
               group.members.front().module);
  for (const GroupMember& m : group.members) {
    if (m.role == Role::depthwise) {
      replace_depthwise(model, m, keep);
      continue;
    }
    for (const Slice& s : m.slices) cut_parameter(model, s, keep);
  }
  model.zero_grad();
}

ChannelPruning prune_channels(nn::Module& model, const Shape& input_shape, const Importance& importance,
                              const ChannelTarget& target, const std::vector<std::string>& ignored) {
  ChannelPruning result;
  result.groups = dependency_groups(model, input_shape, ignored);
  result.removed = select_channels(model, result.groups, importance, target);
  for (size_t g = 0; g < result.groups.size(); ++g)
    if (!result.removed[g].empty()) remove_channels(model, result.groups[g], result.removed[g]);
  return result;
}

}  // namespace shears::prune
