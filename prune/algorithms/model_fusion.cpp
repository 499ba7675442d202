// Cross-model OT fusion (OTFusion, weight-based; see model_fusion.hpp for the procedure and the
// departures).
#include "prune/algorithms/model_fusion.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "prune/importance.hpp"

namespace shears::prune {
namespace {

Tensor slice_tensor(const nn::Module& model, const Slice& s) {
  return s.buffer ? model.buffer(s.tensor) : model.parameter(s.tensor);
}

// Flat indices of each channel's elements, channel by channel (the same count and order in each).
std::vector<std::vector<int64_t>> channel_indices(const Tensor& t, const Slice& s, int64_t channels) {
  SHEARS_CHECK(t.dim() > s.dim && t.size(s.dim) == channels * s.span, "model_fusion", "'", s.tensor, "' has shape ",
               to_string(t.shape()), ", expected ", channels, " x ", s.span, " along dim ", s.dim);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) for_each_in_channel(t.shape(), s, c, [&](int64_t i) { out[c].push_back(i); });
  return out;
}

// Names and shapes of every parameter and buffer; fusion needs them equal.
std::map<std::string, Shape> tensor_shapes(const nn::Module& m) {
  std::map<std::string, Shape> out;
  for (const auto& [name, t] : m.named_parameters()) out[name] = t.shape();
  for (const auto& [name, t] : m.named_buffers()) out[name] = t.shape();
  return out;
}

void check_same_architecture(const nn::Module& a, const nn::Module& b) {
  auto sa = tensor_shapes(a), sb = tensor_shapes(b);
  for (const auto& [name, shape] : sa) {
    auto it = sb.find(name);
    SHEARS_CHECK(it != sb.end(), "model_fusion", "'", name, "' is in one model only: the models must share an architecture");
    SHEARS_CHECK(it->second == shape, "model_fusion", "'", name, "' is ", to_string(shape), " in one model and ",
                 to_string(it->second), " in the other: the models must share an architecture (prune them alike)");
  }
  SHEARS_CHECK(sa.size() == sb.size(), "model_fusion", "the models have ", sa.size(), " and ", sb.size(),
               " tensors: they must share an architecture");
}

// Step 2: row c holds the concatenated slices of channel c over the describing members (N, L).
Tensor descriptors(const nn::Module& model, const Group& group, const std::vector<const GroupMember*>& members) {
  std::vector<std::vector<float>> u(static_cast<size_t>(group.channels));
  for (const GroupMember* m : members)
    for (const Slice& s : m->slices) {
      Tensor t = slice_tensor(model, s);
      auto idx = channel_indices(t, s, group.channels);
      for (int64_t c = 0; c < group.channels; ++c)
        for (int64_t i : idx[c]) u[c].push_back(t.data()[i]);
    }
  const int64_t length = static_cast<int64_t>(u[0].size());
  Tensor out = Tensor::empty({group.channels, length});
  for (int64_t c = 0; c < group.channels; ++c) std::copy(u[c].begin(), u[c].end(), out.data() + c * length);
  return out;
}

// Step 3's cost, C[i, j] = ‖u_i − v_j‖₂ = √(‖u_i‖² + ‖v_j‖² − 2 u_i·v_j), the products by one sgemm
// (a 512-channel VGG group has 4,608-long descriptors).
ot::Matrix distances(const Tensor& u, const Tensor& v) {
  Tensor dots;
  {
    NoGradGuard no_grad;
    dots = linear(u, v, Tensor());  // (N, N): u vᵀ
  }
  const int64_t n = u.size(0), length = u.size(1);
  auto squared_norms = [&](const Tensor& t) {
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t c = 0; c < n; ++c)
      for (int64_t k = 0; k < length; ++k) out[c] += static_cast<double>(t.data()[c * length + k]) * t.data()[c * length + k];
    return out;
  };
  std::vector<double> nu = squared_norms(u), nv = squared_norms(v);
  ot::Matrix cost(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) cost(i, j) = std::sqrt(std::max(0.0, nu[i] + nv[j] - 2.0 * dots.data()[i * n + j]));
  return cost;
}

}  // namespace

void map_channels(nn::Module& model, const Group& group, const ot::Matrix& map) {
  const int64_t n = group.channels;
  SHEARS_CHECK(map.rows == n && map.cols == n, "map_channels", "the map is ", map.rows, "x", map.cols, " for a group of ",
               n, " channels");
  for (const GroupMember& m : group.members)
    for (const Slice& s : m.slices) {
      SHEARS_CHECK(s.buffer || !model.has_mask(s.tensor), "map_channels", "'", s.tensor,
                   "' carries a mask: make the pruning permanent (remove_mask) before mapping channels");
      Tensor t = slice_tensor(model, s);
      auto idx = channel_indices(t, s, n);
      Tensor old = t.clone();
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t i : idx[j]) t.data()[i] = 0.f;
        for (int64_t i = 0; i < n; ++i) {
          const float w = static_cast<float>(map(j, i));
          if (w == 0.f) continue;  // a permutation map has one entry per row: copy, no rounding
          for (size_t k = 0; k < idx[j].size(); ++k) t.data()[idx[j][k]] += w * old.data()[idx[i][k]];
        }
      }
    }
}

std::vector<ot::Matrix> align_channels(nn::Module& model, nn::Module& reference, const Shape& input_shape) {
  check_same_architecture(model, reference);
  std::vector<Group> groups = dependency_groups(reference, input_shape);
  // Which group feeds each layer's input (a layer not listed reads a feature map no group covers).
  std::map<std::string, size_t> input_group;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const GroupMember& m : groups[g].members)
      if (m.role == Role::consumer) input_group[m.module] = g;

  std::vector<ot::Matrix> maps;
  std::set<size_t> aligned;
  for (size_t g = 0; g < groups.size(); ++g) {
    const Group& group = groups[g];
    std::vector<const GroupMember*> members;
    for (const GroupMember& m : group.members) {
      auto in = input_group.find(m.module);
      bool input_aligned = in == input_group.end() || aligned.count(in->second) > 0;
      if (m.role == Role::depthwise || (m.role == Role::producer && input_aligned)) members.push_back(&m);
    }
    SHEARS_ASSERT(!members.empty());  // the group's first producer reads an earlier group (or the input)
    const int64_t n = group.channels;
    ot::Matrix cost = distances(descriptors(model, group, members), descriptors(reference, group, members));
    std::vector<double> uniform(static_cast<size_t>(n), 1.0 / static_cast<double>(n));
    ot::Matrix plan = ot::emd(uniform, uniform, cost);
    ot::Matrix map(n, n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) map(j, i) = static_cast<double>(n) * plan(i, j);
    map_channels(model, group, map);
    aligned.insert(g);
    maps.push_back(std::move(map));
  }
  return maps;
}

std::shared_ptr<nn::Module> fuse_models(const std::vector<std::shared_ptr<nn::Module>>& models, const Shape& input_shape,
                                        const ModelFusionOptions& options) {
  SHEARS_CHECK(!models.empty(), "fuse_models", "no models to fuse");
  std::vector<std::shared_ptr<nn::Module>> inputs{models[0]};
  for (size_t k = 1; k < models.size(); ++k) {
    check_same_architecture(*models[k], *models[0]);
    inputs.push_back(models[k]->clone());
    if (options.align) align_channels(*inputs.back(), *models[0], input_shape);
  }
  std::shared_ptr<nn::Module> fused = models[0]->clone();
  std::set<std::string> integer_buffers;  // num_batches_tracked: the reference's count
  for (const auto& e : fused->state_dict())
    if (e.dtype != safetensors::Dtype::F32) integer_buffers.insert(e.name);
  nn::NamedTensors tensors = fused->named_parameters(), buffers = fused->named_buffers();
  tensors.insert(tensors.end(), buffers.begin(), buffers.end());
  const float scale = 1.0f / static_cast<float>(inputs.size());
  for (const auto& [name, t] : tensors) {
    if (integer_buffers.count(name)) continue;
    bool buffer = fused->has_buffer(name);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.f;
    for (const auto& m : inputs) {
      Tensor src = buffer ? m->buffer(name) : m->parameter(name);
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += scale * src.data()[i];
    }
  }
  return fused;
}

}  // namespace shears::prune
