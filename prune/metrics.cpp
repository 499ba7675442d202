#include "prune/metrics.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/autograd.hpp"
#include "nn/summary.hpp"
#include "prune/scope.hpp"

namespace shears::prune {

int64_t nonzeros(const nn::Module& model, const std::string& name) {
  Tensor value = model.parameter(name);
  Tensor mask = model.has_mask(name) ? model.mask(name) : Tensor();
  int64_t count = 0;
  for (int64_t i = 0; i < value.numel(); ++i)
    count += value.data()[i] != 0.f && (!mask.defined() || mask.data()[i] != 0.f);
  return count;
}

SizeCounts count_size(nn::Module& model, const Shape& input_shape) {
  SizeCounts s;
  for (const auto& [name, value] : model.named_parameters()) {
    s.size += value.numel();
    s.size_nz += nonzeros(model, name);
  }
  for (const nn::LayerSummary& layer : nn::summarize(model, input_shape).layers) {
    s.macs += layer.macs;
    if (layer.macs == 0) continue;
    std::string weight = layer.name.empty() ? "weight" : layer.name + ".weight";
    int64_t numel = model.parameter(weight).numel();
    s.macs_nz += layer.macs / numel * nonzeros(model, weight);  // MACs = positions × weight entries
  }
  return s;
}

double LayerDensity::sparsity() const { return 1.0 - static_cast<double>(nonzero) / numel(before); }

std::vector<LayerDensity> layer_densities(const nn::Module& dense, const nn::Module& pruned) {
  std::vector<LayerDensity> layers;
  for (const std::string& name : prunable_parameters(dense))
    layers.push_back({name, dense.parameter(name).shape(), pruned.parameter(name).shape(), nonzeros(pruned, name)});
  return layers;
}

double total_sparsity(const std::vector<LayerDensity>& layers) {
  int64_t total = 0, nonzero = 0;
  for (const LayerDensity& l : layers) {
    total += numel(l.before);
    nonzero += l.nonzero;
  }
  return total ? 1.0 - static_cast<double>(nonzero) / total : 0.0;
}

namespace {

Latency stats(std::vector<double> ms) {
  Latency l;
  double n = static_cast<double>(ms.size()), mean = 0;
  for (double v : ms) mean += v / n;
  for (double v : ms) l.std_ms += (v - mean) * (v - mean);
  l.std_ms = ms.size() > 1 ? std::sqrt(l.std_ms / (n - 1)) : 0.0;
  std::sort(ms.begin(), ms.end());
  size_t mid = ms.size() / 2;
  l.median_ms = ms.size() % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
  return l;
}

}  // namespace

std::pair<Latency, Latency> time_alternating(const std::function<void()>& a, const std::function<void()>& b,
                                             int64_t runs, int warmups) {
  auto time_one = [](const std::function<void()>& f) {
    auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  for (int warm_up = 0; warm_up < warmups; ++warm_up) {
    time_one(a);
    time_one(b);
  }
  std::vector<double> ta, tb;
  for (int64_t r = 0; r < runs; ++r) {
    ta.push_back(time_one(a));
    tb.push_back(time_one(b));
  }
  return {stats(ta), stats(tb)};
}

std::pair<Latency, Latency> time_inference(nn::Module& dense, nn::Module& pruned, const Tensor& images, int64_t runs) {
  NoGradGuard no_grad;
  dense.eval();
  pruned.eval();
  return time_alternating([&] { dense(images); }, [&] { pruned(images); }, runs);
}

}  // namespace shears::prune
