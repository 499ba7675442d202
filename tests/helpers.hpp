// Shared test helpers: seeded inputs and comparisons.
#pragma once
#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>
#include <string>

#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"

namespace shears::test {

// A fresh directory under the system temp dir, removed with its contents at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "shears_test_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

inline Tensor random_tensor(const Shape& shape, uint64_t seed, float low = -1.f, float high = 1.f) {
  Generator gen(seed);
  return Tensor::rand(shape, low, high, gen);
}

// Largest |a − b| / (atol + rtol·|b|); ≤ 1 means every element is within tolerance.
inline double tolerance_ratio(const float* a, const float* b, int64_t n, double atol, double rtol) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double d = std::abs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    worst = std::max(worst, d / (atol + rtol * std::abs(static_cast<double>(b[i]))));
  }
  return worst;
}

inline std::vector<kernels::Isa> supported_isas() {
  std::vector<kernels::Isa> out;
  for (kernels::Isa isa : {kernels::Isa::Scalar, kernels::Isa::Avx2, kernels::Isa::Avx512})
    if (kernels::cpu_supports(isa)) out.push_back(isa);
  return out;
}

// Runs body once per supported ISA and per thread count {1, 2}, restoring the defaults after.
inline void for_each_configuration(const std::function<void()>& body) {
  const kernels::Isa initial = kernels::kernels().isa;
  const int threads = num_threads();
  for (kernels::Isa isa : supported_isas())
    for (int t : {1, 2}) {
      kernels::use_isa(isa);
      set_num_threads(t);
      INFO("isa " << kernels::isa_name(isa) << ", " << t << " thread(s)");
      body();
    }
  kernels::use_isa(initial);
  set_num_threads(threads);
}

inline void require_close(const Tensor& a, const Tensor& b, double atol = 1e-5, double rtol = 1e-4) {
  REQUIRE(a.shape() == b.shape());
  CHECK(tolerance_ratio(a.data(), b.data(), a.numel(), atol, rtol) <= 1.0);
}

}  // namespace shears::test
