// What pruning bought, in ShrinkBench's vocabulary (docs/design.md#pruning-metrics): parameters
// and multiply-accumulates, all and nonzero, per-layer densities, and the measured latency of the
// dense and pruned models side by side.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace shears::prune {

// Entries of a parameter that are nonzero with its mask (if any) applied.
int64_t nonzeros(const nn::Module& model, const std::string& name);

struct SizeCounts {
  int64_t size = 0, size_nz = 0;  // parameters; those nonzero with masks applied
  int64_t macs = 0, macs_nz = 0;  // per image; nz: each Conv2d/Linear's MACs × its weight density
};
SizeCounts count_size(nn::Module& model, const Shape& input_shape);

// One prunable (Conv2d/Linear) weight of the dense model, before and after pruning.
struct LayerDensity {
  std::string name;
  Shape before, after;
  int64_t nonzero = 0;      // after, masks applied
  double sparsity() const;  // 1 − nonzero / numel(before): masks and removed channels alike
};
std::vector<LayerDensity> layer_densities(const nn::Module& dense, const nn::Module& pruned);
double total_sparsity(const std::vector<LayerDensity>& layers);

struct Latency {
  double median_ms = 0, std_ms = 0;  // the median resists the outliers of a shared machine
};

// a() and b() timed in turn, `runs` times each after `warmups` of each. Returns {a, b}.
std::pair<Latency, Latency> time_alternating(const std::function<void()>& a, const std::function<void()>& b,
                                             int64_t runs, int warmups = 2);

// Forwards of `images` without gradients, the two models alternating (after warm-up runs), so
// that clock and cache drift hit both alike. Returns {dense, pruned}.
std::pair<Latency, Latency> time_inference(nn::Module& dense, nn::Module& pruned, const Tensor& images, int64_t runs);

}  // namespace shears::prune
