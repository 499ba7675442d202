// Sparse against dense: Linear 4096×4096 (batch 128 and 1) and the convolution kinds of the
// density table (core/sparse.hpp) at densities 1 (dense path) down to 0.02, inference.
// Args: {batch or kind, density in thousandths}; 1000 runs the dense op. The crossover where the
// sparse time falls below the dense one is the table's threshold for that kind on this ISA.
#include <benchmark/benchmark.h>

#include <memory>

#include "core/ops.hpp"
#include "core/random.hpp"
#include "core/sparse.hpp"

namespace shears {
namespace {

Tensor random(const Shape& shape) {
  static Generator gen(2);
  return Tensor::randn(shape, gen);
}

// The form of w keeping a random `density` of its entries.
std::shared_ptr<SparseWeight> form(const Tensor& w, double density) {
  static Generator gen(3);
  Tensor mask = Tensor::empty(w.shape());
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data()[i] = gen.uniform() < density ? 1.f : 0.f;
  return std::make_shared<SparseWeight>(SparseWeight::from_dense(w, mask));
}

void BM_linear_4096(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const double density = state.range(1) / 1000.0;
  Tensor x = random({batch, 4096}), w = random({4096, 4096}), b = random({4096});
  auto sparse = density < 1 ? form(w, density) : nullptr;
  for (auto _ : state)
    benchmark::DoNotOptimize((sparse ? sparse_linear(x, Tensor(), sparse, b) : linear(x, w, b)).data());
  state.SetLabel(sparse ? "sparse" : "dense");
}
BENCHMARK(BM_linear_4096)
    ->ArgsProduct({{128, 1}, {1000, 700, 500, 400, 300, 200, 100, 50, 20}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// kind 0: 1×1 conv 256→256 on 8×8; kind 1: 3×3 conv 128→128 on 16×16 (padding 1); batch 32.
void BM_conv_kind(benchmark::State& state) {
  const bool pointwise = state.range(0) == 0;
  const double density = state.range(1) / 1000.0;
  const int64_t C = pointwise ? 256 : 128, S = pointwise ? 8 : 16, k = pointwise ? 1 : 3;
  Tensor x = random({32, C, S, S}), w = random({C, C, k, k});
  Conv2dOptions options{{1, 1}, {k / 2, k / 2}, {1, 1}, 1};
  auto sparse = density < 1 ? form(w, density) : nullptr;
  for (auto _ : state)
    benchmark::DoNotOptimize(
        (sparse ? sparse_conv2d(x, Tensor(), sparse, Tensor(), options) : conv2d(x, w, Tensor(), options)).data());
  state.SetLabel(std::string(pointwise ? "conv1x1" : "conv3x3") + (sparse ? " sparse" : " dense"));
}
BENCHMARK(BM_conv_kind)
    ->ArgsProduct({{0, 1}, {1000, 700, 500, 400, 300, 200, 100}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace shears
