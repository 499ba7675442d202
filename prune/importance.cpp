// Channel importances (docs/algorithms/baselines.md#channel-importances).
#include "prune/importance.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace shears::prune {

namespace {

// Per channel: Σ term(w, ∂L/∂w) over each non-norm member's weight slice, averaged over those
// members, divided by the mean over channels.
std::vector<float> weight_slice_scores(const nn::Module& model, const Group& group,
                                       const std::function<double(float w, float g)>& term) {
  std::vector<double> acc(group.channels, 0.0);
  int64_t members = 0;
  for (const GroupMember& m : group.members) {
    if (m.role == Role::norm) continue;
    const Slice& s = m.slices.front();  // the weight
    Tensor w = model.parameter(s.tensor);
    Tensor g = w.grad();
    ++members;
    for (int64_t c = 0; c < group.channels; ++c) {
      double v = 0.0;
      for_each_in_channel(w.shape(), s, c, [&](int64_t i) { v += term(w.data()[i], g.defined() ? g.data()[i] : 0.f); });
      acc[c] += v;
    }
  }
  double mean = 0.0;
  for (double& a : acc) mean += a /= std::max<int64_t>(members, 1);
  mean /= std::max<int64_t>(group.channels, 1);
  std::vector<float> out(group.channels);
  for (int64_t c = 0; c < group.channels; ++c) out[c] = static_cast<float>(mean > 0 ? acc[c] / mean : acc[c]);
  return out;
}

}  // namespace

Importance magnitude_importance(int p) {
  SHEARS_CHECK(p == 1 || p == 2, "magnitude_importance", "p must be 1 or 2, got ", p);
  return [p](const nn::Module& model, const Group& group) {
    return weight_slice_scores(model, group, [p](float w, float) { return p == 1 ? std::abs(w) : double(w) * w; });
  };
}

Importance lamp_importance() {
  return [](const nn::Module& model, const Group& group) {
    std::vector<float> l2 = magnitude_importance(2)(model, group);
    std::vector<int64_t> order(l2.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l2[a] > l2[b]; });
    std::vector<float> out(l2.size());
    double running = 0.0;
    for (size_t i = 0; i < order.size();) {
      size_t tie_end = i;  // equal scores share one denominator: every score at least as large
      while (tie_end < order.size() && l2[order[tie_end]] == l2[order[i]]) running += l2[order[tie_end++]];
      for (; i < tie_end; ++i) out[order[i]] = running > 0 ? static_cast<float>(l2[order[i]] / running) : 0.f;
    }
    return out;
  };
}

Importance taylor_importance() {
  return [](const nn::Module& model, const Group& group) {
    for (const GroupMember& m : group.members)
      if (m.role != Role::norm)
        SHEARS_CHECK(model.parameter(m.slices.front().tensor).grad().defined(), "taylor_importance", "'",
                     m.slices.front().tensor, "' has no gradient: run a backward over a few batches first");
    return weight_slice_scores(model, group, [](float w, float g) { return std::abs(double(w) * g); });
  };
}

Importance bn_scale_importance() {
  return [](const nn::Module& model, const Group& group) {
    std::vector<float> out(group.channels, 0.f);
    int64_t norms = 0;
    for (const GroupMember& m : group.members) {
      if (m.role != Role::norm || !model.has_parameter(m.module.empty() ? "weight" : m.module + ".weight")) continue;
      Tensor gamma = model.parameter(m.module.empty() ? "weight" : m.module + ".weight");
      for (int64_t c = 0; c < group.channels; ++c) out[c] += std::abs(gamma.data()[c]);
      ++norms;
    }
    SHEARS_CHECK(norms > 0, "bn_scale_importance", "the group of ", group.members.front().module,
                 " has no affine BatchNorm");
    for (float& v : out) v /= static_cast<float>(norms);
    return out;
  };
}

Importance random_importance(Generator& gen) {
  return [&gen](const nn::Module&, const Group& group) {
    std::vector<float> out(group.channels);
    for (float& v : out) v = gen.uniform();
    return out;
  };
}

}  // namespace shears::prune
