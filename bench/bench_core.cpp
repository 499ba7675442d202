// Core kernels: sgemm, conv2d (forward, backward), batch norm, pooling, elementwise,
// cross-entropy and linear, on the shapes of tests/kernel_cases.hpp at batch 128.
// Counters: GFLOP/s for compute-bound kernels, GB/s (bytes read + written) for the others, both
// over wall-clock time (UseRealTime: the kernels are multithreaded).
#include <benchmark/benchmark.h>

#include "core/autograd.hpp"
#include "core/blas.hpp"
#include "core/ops.hpp"
#include "core/ops/batch_norm.hpp"
#include "core/ops/conv2d.hpp"
#include "core/random.hpp"
#include "tests/kernel_cases.hpp"

namespace shears {
namespace {

Tensor random(const Shape& shape) {
  static Generator gen(1);
  return Tensor::randn(shape, gen);
}

void set_rate(benchmark::State& state, double per_iteration, const char* name) {
  state.counters[name] = benchmark::Counter(per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_sgemm(benchmark::State& state) {
  int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  Tensor a = random({M, K}), b = random({K, N}), c = Tensor::empty({M, N});
  for (auto _ : state) blas::sgemm(false, false, M, N, K, 1.f, a.data(), K, b.data(), N, 0.f, c.data(), N);
  set_rate(state, 2e-9 * M * N * K, "GFLOP/s");
}
BENCHMARK(BM_sgemm)->Args({256, 256, 256})->Args({512, 512, 512})->Args({1024, 1024, 1024})
    ->Args({2048, 2048, 2048})->Args({64, 131072, 576})->Args({576, 64, 131072})->Unit(benchmark::kMillisecond)->UseRealTime();

// Conv benchmarks are registered from the shared case list: forward, and backward (input + weight).
void conv_forward(benchmark::State& state, const cases::ConvCase& c) {
  int64_t N = c.bench_batch;
  ConvGeometry g = conv_geometry(c.input(N), c.weight(), c.options());
  Tensor x = random(c.input(N)), w = random(c.weight()), y = Tensor::empty({N, c.C_out, g.H_out, g.W_out});
  for (auto _ : state) conv2d_forward(g, x.data(), w.data(), nullptr, y.data());
  set_rate(state, 1e-9 * g.gemm_flops(), "GFLOP/s");
}

void conv_backward(benchmark::State& state, const cases::ConvCase& c) {
  int64_t N = c.bench_batch;
  ConvGeometry g = conv_geometry(c.input(N), c.weight(), c.options());
  Tensor x = random(c.input(N)), w = random(c.weight()), dy = random({N, c.C_out, g.H_out, g.W_out});
  Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
  for (auto _ : state) conv2d_backward(g, dy.data(), x.data(), w.data(), dx.data(), dw.data());
  set_rate(state, 2e-9 * g.gemm_flops(), "GFLOP/s");
}

// The weight gradient alone (the backward above is dx and dw): kernels tuned one at a time.
void conv_backward_weight(benchmark::State& state, const cases::ConvCase& c) {
  int64_t N = c.bench_batch;
  ConvGeometry g = conv_geometry(c.input(N), c.weight(), c.options());
  Tensor x = random(c.input(N)), dy = random({N, c.C_out, g.H_out, g.W_out}), dw = Tensor::empty(c.weight());
  for (auto _ : state) conv2d_backward_weight(g, dy.data(), x.data(), dw.data());
  set_rate(state, 1e-9 * g.gemm_flops(), "GFLOP/s");
}

[[maybe_unused]] const bool conv_registered = [] {
  for (const cases::ConvCase& c : cases::conv_cases()) {
    if (!c.bench_batch) continue;
    benchmark::RegisterBenchmark((std::string("BM_conv2d_fwd/") + c.name).c_str(), conv_forward, c)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("BM_conv2d_bwd/") + c.name).c_str(), conv_backward, c)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("BM_conv2d_bwd_weight/") + c.name).c_str(), conv_backward_weight, c)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return true;
}();

// Batch norm, 64 channels 32×32, batch 128: training forward (statistics + normalisation),
// eval forward, and the training backward.
void BM_batch_norm(benchmark::State& state) {
  bool training = state.range(0) == 1, backward = state.range(0) == 2;
  Tensor x = random({128, 64, 32, 32}), w = Tensor::ones({64}), b = Tensor::zeros({64});
  Tensor rm = Tensor::zeros({64}), rv = Tensor::ones({64});
  if (backward) w.requires_grad_(), x.requires_grad_();
  Tensor dy = random(x.shape());
  for (auto _ : state) {
    Tensor y = batch_norm(x, w, b, rm, rv, training || backward);
    if (backward) y.backward(dy);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, 1e-9 * x.numel() * 4 * (backward ? 5 : 2), "GB/s");
  state.SetLabel(backward ? "train forward+backward" : (training ? "train forward" : "eval forward"));
}
BENCHMARK(BM_batch_norm)->Arg(1)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_max_pool2d(benchmark::State& state) {
  Tensor x = random({128, 64, 32, 32});
  for (auto _ : state) benchmark::DoNotOptimize(max_pool2d(x, {{2, 2}, {2, 2}, {0, 0}, true}).data());
  set_rate(state, 1e-9 * x.numel() * 4 * 1.25, "GB/s");
}
BENCHMARK(BM_max_pool2d)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_relu(benchmark::State& state) {
  Tensor x = random({128, 64, 32, 32});
  for (auto _ : state) benchmark::DoNotOptimize(relu(x).data());
  set_rate(state, 1e-9 * x.numel() * 8, "GB/s");
}
BENCHMARK(BM_relu)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add(benchmark::State& state) {
  Tensor a = random({128, 64, 32, 32}), b = random({128, 64, 32, 32});
  for (auto _ : state) benchmark::DoNotOptimize(add(a, b).data());
  set_rate(state, 1e-9 * a.numel() * 12, "GB/s");
}
BENCHMARK(BM_add)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_cross_entropy(benchmark::State& state) {
  Tensor logits = random({128, 1000}).requires_grad_();
  std::vector<int64_t> targets(128);
  for (int64_t i = 0; i < 128; ++i) targets[i] = (i * 37) % 1000;
  for (auto _ : state) {
    Tensor loss = cross_entropy(logits, targets);
    loss.backward();
    logits.zero_grad();
  }
  set_rate(state, 1e-9 * logits.numel() * 4 * 3, "GB/s");
  state.SetLabel("forward+backward, 128x1000");
}
BENCHMARK(BM_cross_entropy)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_linear(benchmark::State& state) {
  Tensor x = random({128, 4096}), w = random({4096, 4096}), b = random({4096});
  for (auto _ : state) benchmark::DoNotOptimize(linear(x, w, b).data());
  set_rate(state, 2e-9 * 128 * 4096 * 4096, "GFLOP/s");
  state.SetLabel("forward, batch 128, 4096x4096");
}
BENCHMARK(BM_linear)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace shears
