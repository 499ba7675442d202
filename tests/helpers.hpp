// Shared test helpers: seeded inputs and comparisons.
#pragma once
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>

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

inline void require_close(const Tensor& a, const Tensor& b, double atol = 1e-5, double rtol = 1e-4) {
  REQUIRE(a.shape() == b.shape());
  CHECK(tolerance_ratio(a.data(), b.data(), a.numel(), atol, rtol) <= 1.0);
}

}  // namespace shears::test
