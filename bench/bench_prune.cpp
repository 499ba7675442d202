// Pruning solvers' inner kernels: entropic OT (Sinkhorn) on SWAP's problem shape — uniform masses
// over n samples, cost (y_i − z_j)², ε a multiple of the mean cost (SWAP's --eps-relative).
#include <benchmark/benchmark.h>

#include <random>

#include "prune/ot.hpp"

namespace shears {
namespace {

// Args: n, 10·ε/mean(M), iteration cap (0: 5000 with tolerance 1e-9; else exactly that many),
// over-relaxation (1) or the plain iterations (0).
void BM_sinkhorn(benchmark::State& state) {
  const int64_t n = state.range(0);
  const double eps_over_mean = static_cast<double>(state.range(1)) / 10.0;
  const int64_t cap = state.range(2);
  const bool overrelaxation = state.range(3) != 0;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> y(n), z(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = normal(rng);
    z[i] = y[i] + 0.5 * normal(rng);  // pruned outputs: near the dense ones
  }
  prune::ot::Matrix cost(n, n);
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) mean += cost(i, j) = (y[i] - z[j]) * (y[i] - z[j]);
  mean /= static_cast<double>(n * n);
  const std::vector<double> mass(n, 1.0 / static_cast<double>(n));
  int64_t iterations = 0;
  for (auto _ : state) {
    auto r = prune::ot::sinkhorn(mass, mass, cost, {eps_over_mean * mean, cap > 0 ? cap : 5000, cap > 0 ? 0.0 : 1e-9, overrelaxation});
    iterations = r.iterations;
    benchmark::DoNotOptimize(r.plan.values.data());
  }
  state.counters["iterations"] = static_cast<double>(iterations);
}
BENCHMARK(BM_sinkhorn)
    ->Args({200, 10, 0, 1})
    ->Args({1000, 10, 0, 1})
    ->Args({1000, 3, 0, 1})
    ->Args({1000, 2, 0, 1})
    ->Args({1000, 2, 0, 0})
    ->Args({1000, 2, 1000, 0})  // time per iteration
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace shears
