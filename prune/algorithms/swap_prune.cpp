// The gradual driver of SWAP, LR, WoodFisher and magnitude over a model, the noise model and the
// cubic schedule (docs/algorithms/swap.md#gradual-protocol, docs/algorithms/swap.md#gradient-noise);
// the stage solvers are in swap.cpp.
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "prune/algorithms/swap.hpp"
#include "prune/algorithms/woodfisher.hpp"
#include "prune/per_sample.hpp"

namespace shears::prune {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// While alive, the named parameters that carry a mask carry an all-ones mask instead (their raw
// values are already 0 where pruned, so the forward is unchanged and G gets every entry).
class OpenMasks {
 public:
  OpenMasks(nn::Module& model, const std::vector<std::string>& names) : model_(model) {
    for (const std::string& name : names)
      if (model.has_mask(name)) {
        saved_.emplace_back(name, model.mask(name));
        model.set_mask(name, Tensor::ones(model.parameter(name).shape()));
      }
  }
  ~OpenMasks() {
    for (auto& [name, mask] : saved_) model_.set_mask(name, mask);
  }
  OpenMasks(const OpenMasks&) = delete;
  OpenMasks& operator=(const OpenMasks&) = delete;

 private:
  nn::Module& model_;
  NamedTensors saved_;
};

const char* method_name(StageMethod m) {
  switch (m) {
    case StageMethod::swap: return "swap";
    case StageMethod::lr: return "lr";
    case StageMethod::woodfisher: return "woodfisher";
    case StageMethod::magnitude: return "magnitude";
  }
  return "?";
}

}  // namespace

void add_gradient_noise(Tensor& G, double scale, double prop, Generator& gen) {
  SHEARS_CHECK(G.dim() == 2, "gradient noise", "G must be (n, p), got ", to_string(G.shape()));
  SHEARS_CHECK(scale >= 0 && std::isfinite(scale) && prop >= 0 && prop <= 1, "gradient noise",
               "the scale must be >= 0 and the proportion in [0, 1], got ", scale, " and ", prop);
  const int64_t n = G.size(0), p = G.size(1), m = prune_count(prop, p);
  if (scale == 0.0 || m == 0) return;
  std::vector<int64_t> index(p);
  for (int64_t i = 0; i < n; ++i) {
    float* row = G.data() + i * p;
    double mean = 0.0, var = 0.0;
    for (int64_t j = 0; j < p; ++j) mean += row[j];
    mean /= static_cast<double>(p);
    for (int64_t j = 0; j < p; ++j) var += (row[j] - mean) * (row[j] - mean);
    const double sd = scale * std::sqrt(var / static_cast<double>(std::max<int64_t>(p - 1, 1)));
    std::iota(index.begin(), index.end(), int64_t{0});
    for (int64_t j = 0; j < m; ++j) {  // the first m of a partial Fisher–Yates shuffle
      std::swap(index[j], index[j + gen.randint(p - j)]);
      row[index[j]] += static_cast<float>(sd * gen.normal());
    }
  }
}

double cubic_sparsity(int64_t t, int64_t stages, double target, double initial) {
  SHEARS_CHECK(stages >= 1 && t >= 1 && t <= stages, "cubic schedule", "stage ", t, " of ", stages);
  if (stages == 1) return target;
  const double u = 1.0 - static_cast<double>(t - 1) / static_cast<double>(stages - 1);
  return target + (initial - target) * u * u * u;
}

namespace {

// One stage's solve: the method's weights and support of k entries, from the gradients G, the
// weights at the call (w_bar) and now (w, zero where `active` is off).
SwapStageResult solve_stage(const Tensor& G, const Vec& w_bar, const Vec& w, const std::vector<uint8_t>& active,
                            const std::vector<int64_t>& sizes, int64_t k, const SwapPruneOptions& options) {
  SwapStageResult r;
  switch (options.method) {
    case StageMethod::swap:
    case StageMethod::lr: {
      SwapOptions o = options.swap;
      o.transport = options.method == StageMethod::swap;
      SwapProblem problem = swap_problem(G, w_bar, options.lambda);
      r = o.solver == Solver::code ? swap_stage(problem, w, k, o) : swap_stage_exact(problem, w, k, o);
      break;
    }
    case StageMethod::woodfisher: {
      WoodFisherResult wf = woodfisher_stage(G, w, active, sizes, k, options.woodfisher);
      r.w = std::move(wf.w);
      r.support = std::move(wf.support);
      r.log.magnitude_overlap = support_overlap(r.support, top_k_support(w, k), k);
      break;
    }
    case StageMethod::magnitude:
      r.support = top_k_support(w, k);
      r.w = masked(w, r.support);
      break;
  }
  return r;
}

}  // namespace

std::vector<SwapStageLog> swap_prune(nn::Module& model, const std::vector<std::string>& names,
                                     const SparsityTarget& target, const BatchSource& samples,
                                     const SwapPruneOptions& options,
                                     const std::function<void(int64_t)>& between_stages) {
  check_target(target);
  SHEARS_CHECK(target.distribution == Distribution::global && target.max_layer_sparsity == 1.0, "swap_prune",
               method_name(options.method), " prunes globally (one H_k over all named weights); got a per-layer "
               "distribution or a per-layer cap");
  SHEARS_CHECK(!names.empty(), "swap_prune", "no parameters to prune");
  SHEARS_CHECK(options.stages >= 1, "swap_prune", "stages must be >= 1, got ", options.stages);
  SHEARS_CHECK(options.initial_sparsity >= 0 && options.initial_sparsity <= target.sparsity, "swap_prune",
               "the initial sparsity must be in [0, target], got ", options.initial_sparsity);

  std::vector<int64_t> sizes;
  Vec w_bar;  // the effective weights at the call (parameter ⊙ mask)
  for (const std::string& name : names) {
    Tensor t = model.parameter(name);
    Tensor m = model.has_mask(name) ? model.mask(name) : Tensor();
    sizes.push_back(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) w_bar.push_back(m.defined() && m.data()[i] == 0.f ? 0.0 : t.data()[i]);
  }
  const auto p = static_cast<int64_t>(w_bar.size());

  std::vector<SwapStageLog> logs;
  for (int64_t t = 1; t <= options.stages; ++t) {
    const double sparsity = cubic_sparsity(t, options.stages, target.sparsity, options.initial_sparsity);
    const int64_t k = p - prune_count(sparsity, p, target.keep_floor);
    Batch batch = samples();
    auto start = std::chrono::steady_clock::now();
    Tensor G;
    {
      OpenMasks open(model, names);
      G = per_sample_gradients(model, names, batch.images, batch.labels, options.gradient_block);
    }
    if (options.noise_scale > 0) {
      Generator gen(options.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t));  // noise: f(seed, stage)
      add_gradient_noise(G, options.noise_scale, options.noise_prop, gen);
    }
    const double gradient_seconds = seconds_since(start);

    Vec w;
    std::vector<uint8_t> active;
    for (const std::string& name : names) {
      Tensor v = model.parameter(name);
      Tensor m = model.has_mask(name) ? model.mask(name) : Tensor();
      for (int64_t i = 0; i < v.numel(); ++i) {
        bool on = !m.defined() || m.data()[i] != 0.f;
        active.push_back(on);
        w.push_back(on ? v.data()[i] : 0.0);
      }
    }
    start = std::chrono::steady_clock::now();
    SwapStageResult r = solve_stage(G, w_bar, w, active, sizes, k, options);
    SwapStageLog log = r.log;
    log.method = method_name(options.method);
    log.stage = t;
    log.sparsity = sparsity;
    log.kept = k;
    log.gradient_seconds = gradient_seconds;
    log.solve_seconds = seconds_since(start);
    for (int64_t i = 0; i < p; ++i) log.regrown += r.support[i] && !active[i];

    NamedTensors masks;
    int64_t offset = 0;
    for (size_t l = 0; l < names.size(); ++l) {
      Tensor value = model.parameter(names[l]);
      Tensor mask = Tensor::empty(value.shape());
      for (int64_t i = 0; i < sizes[l]; ++i) {
        value.data()[i] = static_cast<float>(r.w[offset + i]);
        mask.data()[i] = r.support[offset + i] ? 1.f : 0.f;
      }
      masks.emplace_back(names[l], mask);
      offset += sizes[l];
    }
    apply_masks(model, masks);
    logs.push_back(log);
    if (t < options.stages && between_stages) between_stages(t);
  }
  return logs;
}

}  // namespace shears::prune
