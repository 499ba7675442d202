// prune/ot: exact and entropic optimal transport (docs/algorithms/intra-fusion.md#optimal-transport-solvers;
// the properties are listed in docs/algorithms/intra-fusion.md#properties-the-tests-check).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "prune/ot.hpp"

using namespace shears;
using prune::ot::Matrix;

namespace {

std::vector<double> random_masses(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.1, 1.0);
  std::vector<double> m(n);
  for (double& v : m) v = u(rng);
  double s = std::accumulate(m.begin(), m.end(), 0.0);
  for (double& v : m) v /= s;
  return m;
}

Matrix random_cost(int64_t n, int64_t k, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Matrix c(n, k);
  for (double& v : c.values) v = u(rng);
  return c;
}

// A vertex of the transport polytope: the north-west corner rule on shuffled rows and columns.
Matrix north_west_corner(std::vector<double> a, std::vector<double> b, std::mt19937& rng) {
  std::vector<int64_t> rows(a.size()), cols(b.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::iota(cols.begin(), cols.end(), 0);
  std::shuffle(rows.begin(), rows.end(), rng);
  std::shuffle(cols.begin(), cols.end(), rng);
  Matrix p(static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size()));
  size_t r = 0, c = 0;
  while (r < rows.size() && c < cols.size()) {
    double m = std::min(a[rows[r]], b[cols[c]]);
    p(rows[r], cols[c]) = m;
    a[rows[r]] -= m;
    b[cols[c]] -= m;
    if (a[rows[r]] <= b[cols[c]]) ++r;
    else ++c;
  }
  return p;
}

void require_marginals(const Matrix& plan, const std::vector<double>& a, const std::vector<double>& b, double tol) {
  std::vector<double> r = plan.row_sums(), c = plan.col_sums();
  for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(r[i] - a[i]) <= tol);
  for (size_t j = 0; j < b.size(); ++j) CHECK(std::abs(c[j] - b[j]) <= tol);
  for (double v : plan.values) CHECK(v >= 0.0);
}

}  // namespace

TEST_CASE("emd: marginals, vertex sparsity and optimality against feasible plans", "[ot]") {
  std::mt19937 rng(7);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{7, 4}, {5, 5}, {1, 3}, {12, 6}}) {
    std::vector<double> a = random_masses(n, rng), b = random_masses(k, rng);
    Matrix cost = random_cost(n, k, rng);
    Matrix plan = prune::ot::emd(a, b, cost);
    require_marginals(plan, a, b, 1e-9);
    CHECK(std::count_if(plan.values.begin(), plan.values.end(), [](double v) { return v > 0; }) <= n + k - 1);
    double best = prune::ot::transport_cost(plan, cost);
    for (int trial = 0; trial < 200; ++trial) {
      Matrix other = north_west_corner(a, b, rng);
      require_marginals(other, a, b, 1e-9);
      REQUIRE(best <= prune::ot::transport_cost(other, cost) + 1e-12);
    }
  }
}

TEST_CASE("emd: uniform n x n equals the best permutation (brute force)", "[ot]") {
  std::mt19937 rng(11);
  for (int64_t n = 1; n <= 6; ++n) {
    Matrix cost = random_cost(n, n, rng);
    std::vector<double> u(n, 1.0 / static_cast<double>(n));
    Matrix plan = prune::ot::emd(u, u, cost);
    std::vector<int64_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    double best = INFINITY;
    do {
      double c = 0.0;
      for (int64_t i = 0; i < n; ++i) c += cost(i, perm[i]) / static_cast<double>(n);
      best = std::min(best, c);
    } while (std::next_permutation(perm.begin(), perm.end()));
    CHECK(prune::ot::transport_cost(plan, cost) == Approx(best).epsilon(1e-12));
    // Uniform masses are represented exactly: the optimal vertex is a permutation of 1/n entries.
    for (double v : plan.values) CHECK((v == 0.0 || v == Approx(1.0 / static_cast<double>(n)).epsilon(1e-12)));
  }
}

TEST_CASE("emd: 1-D squared costs give the sorted matching", "[ot]") {
  std::mt19937 rng(3);
  std::normal_distribution<double> g(0.0, 1.0);
  const int64_t n = 9;
  std::vector<double> u(n), v(n);
  for (int64_t i = 0; i < n; ++i) u[i] = g(rng), v[i] = g(rng);
  Matrix cost(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) cost(i, j) = (u[i] - v[j]) * (u[i] - v[j]);
  Matrix plan = prune::ot::emd(std::vector<double>(n, 1.0 / n), std::vector<double>(n, 1.0 / n), cost);
  std::vector<int64_t> su(n), sv(n);
  std::iota(su.begin(), su.end(), 0);
  std::iota(sv.begin(), sv.end(), 0);
  std::sort(su.begin(), su.end(), [&](int64_t x, int64_t y) { return u[x] < u[y]; });
  std::sort(sv.begin(), sv.end(), [&](int64_t x, int64_t y) { return v[x] < v[y]; });
  for (int64_t r = 0; r < n; ++r) CHECK(plan(su[r], sv[r]) == Approx(1.0 / n).epsilon(1e-12));
}

TEST_CASE("emd: rejects bad problems", "[ot]") {
  Matrix cost(2, 2, 1.0);
  CHECK_THROWS_AS(prune::ot::emd({0.5, 0.5}, {0.5, 0.6}, cost), Error);
  CHECK_THROWS_AS(prune::ot::emd({0.5, 0.5}, {1.0}, cost), Error);
  CHECK_THROWS_AS(prune::ot::emd({1.5, -0.5}, {0.5, 0.5}, cost), Error);
}

TEST_CASE("sinkhorn: marginals, and the exact plan as epsilon goes to 0", "[ot]") {
  std::mt19937 rng(5);
  const int64_t n = 6, k = 4;
  std::vector<double> a = random_masses(n, rng), b = random_masses(k, rng);
  Matrix cost = random_cost(n, k, rng);
  Matrix exact = prune::ot::emd(a, b, cost);
  double ot = prune::ot::transport_cost(exact, cost);
  double previous_gap = INFINITY;
  for (double eps : {1.0, 0.1, 0.01, 0.002}) {
    auto r = prune::ot::sinkhorn(a, b, cost, {.epsilon = eps, .max_iterations = 20000, .tolerance = 1e-10});
    INFO("epsilon " << eps);
    REQUIRE(r.converged);
    CHECK(r.marginal_error < 1e-10);
    require_marginals(r.plan, a, b, 1e-9);
    double gap = prune::ot::transport_cost(r.plan, cost) - ot;
    CHECK(gap >= -1e-9);  // the plan's marginals are exact only to the tolerance
    CHECK(gap <= eps * std::log(static_cast<double>(n * k)));  // entropy of a plan ≤ log(N·K)
    CHECK(gap < previous_gap);
    previous_gap = gap;
  }
  // Random costs have a unique optimal plan, which the small-ε plan approaches entry by entry.
  auto r = prune::ot::sinkhorn(a, b, cost, {.epsilon = 0.002, .max_iterations = 20000, .tolerance = 1e-10});
  double worst = 0.0;
  for (size_t e = 0; e < exact.values.size(); ++e) worst = std::max(worst, std::abs(r.plan.values[e] - exact.values[e]));
  CHECK(worst < 1e-3);
}

// Costs of up to 2000 ε: exp(−M/ε) underflows to 0 for whole rows of the kernel, so the scaling
// iterations must absorb into the potentials and restart from a log-domain sweep.
TEST_CASE("sinkhorn: costs far above epsilon, where the plain kernel underflows", "[ot]") {
  std::mt19937 rng(11);
  const int64_t n = 7, k = 5;
  std::vector<double> a = random_masses(n, rng), b = random_masses(k, rng);
  Matrix cost = random_cost(n, k, rng);
  for (double& c : cost.values) c = 1000.0 + 1000.0 * c;
  const double eps = 1.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) REQUIRE(std::exp(-cost(i, j) / eps) == 0.0);
  auto r = prune::ot::sinkhorn(a, b, cost, {.epsilon = eps, .max_iterations = 20000, .tolerance = 1e-10});
  REQUIRE(r.converged);
  for (double v : r.plan.values) REQUIRE(std::isfinite(v));
  require_marginals(r.plan, a, b, 1e-9);
  const double gap = prune::ot::transport_cost(r.plan, cost) - prune::ot::transport_cost(prune::ot::emd(a, b, cost), cost);
  CHECK(gap >= -1e-6);
  CHECK(gap <= eps * std::log(static_cast<double>(n * k)));
}

TEST_CASE("sinkhorn: special cases and the iteration cap", "[ot]") {
  std::mt19937 rng(9);
  std::vector<double> a = random_masses(3, rng), b = random_masses(5, rng);
  Matrix cost = random_cost(3, 5, rng);
  auto exact = prune::ot::sinkhorn(a, b, cost, {.epsilon = 1e-11});
  CHECK(exact.plan.values == prune::ot::emd(a, b, cost).values);
  auto product = prune::ot::sinkhorn(a, b, cost, {.epsilon = INFINITY});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j) CHECK(product.plan(i, j) == a[i] * b[j]);
  auto capped = prune::ot::sinkhorn(a, b, cost, {.epsilon = 1e-4, .max_iterations = 3, .tolerance = 1e-12});
  CHECK_FALSE(capped.converged);
  CHECK(capped.iterations == 3);
  CHECK(capped.marginal_error > 1e-12);
  CHECK_THROWS_AS(prune::ot::sinkhorn({0.0, 1.0}, {0.5, 0.5}, Matrix(2, 2, 1.0)), Error);
  // A kernel whose rows already sum to a before any scaling: the columns must still be fitted.
  const double eps = 0.5;
  auto fitted = prune::ot::sinkhorn({0.5, 0.5}, {0.9, 0.1}, Matrix(2, 2, eps * std::log(4.0)), {.epsilon = eps});
  REQUIRE(fitted.converged);
  require_marginals(fitted.plan, {0.5, 0.5}, {0.9, 0.1}, 1e-9);
}

// SWAP's first plan: costs (y_i − y_j)² between outputs with many near 0 and a sparse heavy tail
// (the shape of per-sample projected gradients), ε = 0.3·mean(M), where plain Sinkhorn needs
// tens of thousands of iterations. Over-relaxation must reach the same plan in far fewer.
TEST_CASE("sinkhorn: over-relaxed iterations reach the plain iterations' plan", "[ot]") {
  std::mt19937 rng(17);
  std::normal_distribution<double> normal;
  const int64_t n = 200;
  std::vector<double> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = normal(rng) * (i < n / 2 ? 1e-3 : 1.0);
  const double tail[] = {6.4, 7.3, 8.3, 8.4, 10.1, 10.5, 13.0, 13.8, 14.9, 17.0};
  std::copy(std::begin(tail), std::end(tail), y.end() - std::size(tail));
  Matrix cost(n, n);
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) mean += cost(i, j) = (y[i] - y[j]) * (y[i] - y[j]);
  mean /= static_cast<double>(n * n);
  const std::vector<double> mass(n, 1.0 / n);
  prune::ot::SinkhornOptions o{.epsilon = 0.3 * mean, .max_iterations = 100000, .tolerance = 1e-11};
  auto relaxed = prune::ot::sinkhorn(mass, mass, cost, o);
  o.overrelaxation = false;
  auto plain = prune::ot::sinkhorn(mass, mass, cost, o);
  REQUIRE(plain.converged);
  REQUIRE(relaxed.converged);
  double worst = 0.0;
  for (size_t e = 0; e < plain.plan.values.size(); ++e)
    worst = std::max(worst, std::abs(relaxed.plan.values[e] - plain.plan.values[e]));
  INFO("plain " << plain.iterations << " iterations, over-relaxed " << relaxed.iterations << ", largest difference "
                << worst);
  CHECK(relaxed.iterations * 5 < plain.iterations);
  require_marginals(relaxed.plan, mass, mass, 1e-10);
  CHECK(worst < 1e-9);
}

// A tolerance no float64 sum can reach: the error falls to its floor in a few dozen iterations,
// then only wanders there. Both kinds of iteration must notice and stop long before the cap. (A slow
// but steady run is not taken for a stalled one: the plain run of the test above needs tens of
// thousands of iterations and still converges.)
TEST_CASE("sinkhorn: an error that stalls above the tolerance stops early, and says so", "[ot]") {
  std::mt19937 rng(5);
  const int64_t n = 200;
  const std::vector<double> mass(n, 1.0 / n);
  const Matrix cost = random_cost(n, n, rng);
  for (bool relaxed : {true, false}) {
    INFO("over-relaxed " << relaxed);
    auto r = prune::ot::sinkhorn(
        mass, mass, cost, {.epsilon = 0.05, .max_iterations = 100000, .tolerance = 1e-20, .overrelaxation = relaxed});
    CHECK_FALSE(r.converged);
    CHECK(r.stagnated);
    CHECK(r.iterations < 2000);
    CHECK(r.marginal_error < 1e-13);
    require_marginals(r.plan, mass, mass, 1e-13);
  }
}

// POT's stopping test (SWAP's official code): the L2 norm of the marginal error, which for errors
// spread over n rows is about √n below the L1 norm, so it stops no later than the L1 test.
TEST_CASE("sinkhorn: the L2 stopping test meets its tolerance in the L2 norm, no later than L1", "[ot]") {
  std::mt19937 rng(21);
  const int64_t n = 300;
  const std::vector<double> mass(n, 1.0 / n);
  const Matrix cost = random_cost(n, n, rng);
  prune::ot::SinkhornOptions o{.epsilon = 0.02, .max_iterations = 100000, .tolerance = 1e-9, .overrelaxation = false};
  auto l1 = prune::ot::sinkhorn(mass, mass, cost, o);
  o.l2_stop = true;
  auto l2 = prune::ot::sinkhorn(mass, mass, cost, o);
  REQUIRE(l1.converged);
  REQUIRE(l2.converged);
  CHECK(l2.iterations <= l1.iterations);
  std::vector<double> rows = l2.plan.row_sums();
  double norm = 0.0;
  for (int64_t i = 0; i < n; ++i) norm += (rows[i] - mass[i]) * (rows[i] - mass[i]);
  CHECK(std::sqrt(norm) == Approx(l2.marginal_error).epsilon(1e-6).margin(1e-18));
  CHECK(l2.marginal_error < 1e-9);
  require_marginals(l2.plan, mass, mass, 1e-9);
}
