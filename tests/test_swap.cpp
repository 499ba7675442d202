// prune/swap and prune/woodfisher: the properties listed in
// docs/algorithms/swap.md#properties-the-tests-check (Sinkhorn marginals and monotonicity in ε, the
// product plan, EMD = sorted matching, EWR(I/n) = LR, the smoothed-target identity, finite
// differences, H_k, τ_c, IHT descent, the noise model, the cubic schedule), the official code's
// stage started from dense weights (= magnitude), the principled solver's descent, WoodFisher's
// Woodbury inverse and saliency, the gradual driver, and one-shot LR/SWAP against magnitude pruning
// on MLPNet trained briefly on Fashion-MNIST.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "data/loader.hpp"
#include "data/open_dataset.hpp"
#include "data/synthetic.hpp"
#include "helpers.hpp"
#include "nn/models/registry.hpp"
#include "optim/optimizer.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/algorithms/swap.hpp"
#include "prune/algorithms/woodfisher.hpp"

using namespace shears;
using prune::ot::Matrix;

namespace {

std::vector<double> random_vector(int64_t n, Generator& gen, double scale = 1.0) {
  std::vector<double> v(n);
  for (double& x : v) x = scale * gen.normal();
  return v;
}

// A random stage: G (n × p) with N(0, 1) entries, w̄ ~ N(0, 1).
prune::SwapProblem random_problem(int64_t n, int64_t p, uint64_t seed, double lambda = 0.01) {
  Generator gen(seed);
  Tensor G = Tensor::randn({n, p}, gen);
  return prune::swap_problem(G, random_vector(p, gen), lambda);
}

std::vector<double> uniform(int64_t n) { return std::vector<double>(n, 1.0 / static_cast<double>(n)); }

Matrix sinkhorn_plan(const Matrix& cost, double eps) {
  const int64_t n = cost.rows;
  auto r = prune::ot::sinkhorn(uniform(n), uniform(n), cost,
                               {.epsilon = eps, .max_iterations = 200000, .tolerance = 1e-11});
  REQUIRE(r.converged);
  return r.plan;
}

double sum_of_squares(const std::vector<double>& v) { return std::inner_product(v.begin(), v.end(), v.begin(), 0.0); }

int64_t count(const std::vector<uint8_t>& mask) { return std::count(mask.begin(), mask.end(), uint8_t{1}); }

// The dense inverse of a (float64, row-major, m × m) by Gauss–Jordan with partial pivoting.
std::vector<double> dense_inverse(std::vector<double> a, int64_t m) {
  std::vector<double> inv(m * m, 0.0);
  for (int64_t i = 0; i < m; ++i) inv[i * m + i] = 1.0;
  for (int64_t c = 0; c < m; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < m; ++r)
      if (std::abs(a[r * m + c]) > std::abs(a[pivot * m + c])) pivot = r;
    for (int64_t j = 0; j < m; ++j) {
      std::swap(a[c * m + j], a[pivot * m + j]);
      std::swap(inv[c * m + j], inv[pivot * m + j]);
    }
    const double d = a[c * m + c];
    for (int64_t j = 0; j < m; ++j) a[c * m + j] /= d, inv[c * m + j] /= d;
    for (int64_t r = 0; r < m; ++r) {
      if (r == c) continue;
      const double f = a[r * m + c];
      for (int64_t j = 0; j < m; ++j) a[r * m + j] -= f * a[c * m + j], inv[r * m + j] -= f * inv[c * m + j];
    }
  }
  return inv;
}

// δI + G_bᵀG_b/n for the columns [begin, begin + size) of G, in float64.
std::vector<double> damped_fisher(const Tensor& G, int64_t begin, int64_t size, double damp) {
  const int64_t n = G.size(0), p = G.size(1);
  std::vector<double> f(size * size, 0.0);
  for (int64_t a = 0; a < size; ++a)
    for (int64_t b = 0; b < size; ++b) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i)
        s += static_cast<double>(G.data()[i * p + begin + a]) * G.data()[i * p + begin + b];
      f[a * size + b] = s / static_cast<double>(n) + (a == b ? damp : 0.0);
    }
  return f;
}

}  // namespace

TEST_CASE("swap: G x and Gᵀ u equal plain float64 loops, zeros of x skipped or not", "[swap]") {
  const int64_t n = 37, p = 203;  // tails of every blocking
  Generator gen(1);
  Tensor G = Tensor::randn({n, p}, gen);
  auto problem = prune::swap_problem(G, random_vector(p, gen), 0.0);
  std::vector<double> x = random_vector(p, gen), u = random_vector(n, gen);
  for (int64_t j = 0; j < p; j += 3) x[j] = 0.0;
  std::vector<double> gx = prune::mat_vec(problem, x), gtu = prune::mat_t_vec(problem, u);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t j = 0; j < p; ++j) s += static_cast<double>(G.data()[i * p + j]) * x[j];
    CHECK(gx[i] == Approx(s).epsilon(1e-12).margin(1e-12));
  }
  for (int64_t j = 0; j < p; ++j) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(G.data()[i * p + j]) * u[i];
    CHECK(gtu[j] == Approx(s).epsilon(1e-12).margin(1e-12));
  }
  CHECK(problem.y == prune::mat_vec(problem, problem.w_bar));
  CHECK_THROWS_AS(prune::mat_vec(problem, std::vector<double>(p + 1)), Error);
}

TEST_CASE("swap: Sinkhorn plans of the SWAP cost have marginals 1/n and a cost rising with ε", "[swap]") {
  const int64_t n = 12;
  auto problem = random_problem(n, 30, 2);
  Generator gen(3);
  Matrix cost = prune::transport_cost_matrix(problem, random_vector(30, gen));
  double mean = std::accumulate(cost.values.begin(), cost.values.end(), 0.0) / static_cast<double>(n * n);
  const double exact = prune::ot::transport_cost(prune::ot::emd(uniform(n), uniform(n), cost), cost);
  double previous = exact;
  for (double ratio : {0.05, 0.1, 0.3, 1.0, 3.0}) {
    Matrix plan = sinkhorn_plan(cost, ratio * mean);
    INFO("eps / mean(M) = " << ratio);
    for (double v : plan.values) CHECK(v >= 0.0);
    for (double r : plan.row_sums()) CHECK(std::abs(r - 1.0 / n) < 1e-6);
    for (double c : plan.col_sums()) CHECK(std::abs(c - 1.0 / n) < 1e-6);
    const double c = prune::ot::transport_cost(plan, cost);
    CHECK(c >= exact - 1e-9);
    CHECK(c >= previous - 1e-9);
    previous = c;
  }
}

TEST_CASE("swap: ε → ∞ gives the product plan, ε → 0 the sorted matching", "[swap]") {
  const int64_t n = 9;
  auto problem = random_problem(n, 20, 4);
  Generator gen(5);
  const std::vector<double> w = random_vector(20, gen);
  Matrix cost = prune::transport_cost_matrix(problem, w);
  const double max_cost = *std::max_element(cost.values.begin(), cost.values.end());
  Matrix flat = sinkhorn_plan(cost, 1e6 * max_cost);
  for (double v : flat.values) CHECK(std::abs(v - 1.0 / (n * n)) < 1e-6);

  // 1-D squared costs with distinct points: the i-th smallest y goes to the i-th smallest z.
  std::vector<double> y = problem.y, z = prune::mat_vec(problem, w);
  std::vector<int64_t> by_y(n), by_z(n);
  std::iota(by_y.begin(), by_y.end(), int64_t{0});
  std::iota(by_z.begin(), by_z.end(), int64_t{0});
  std::sort(by_y.begin(), by_y.end(), [&](int64_t a, int64_t b) { return y[a] < y[b]; });
  std::sort(by_z.begin(), by_z.end(), [&](int64_t a, int64_t b) { return z[a] < z[b]; });
  Matrix expected(n, n);
  for (int64_t r = 0; r < n; ++r) expected(by_y[r], by_z[r]) = 1.0 / n;
  for (double eps : {0.0, 1e-11}) {  // emd directly, and Sinkhorn's ε ≤ 1e-10 branch
    Matrix plan = eps == 0.0 ? prune::ot::emd(uniform(n), uniform(n), cost)
                             : prune::ot::sinkhorn(uniform(n), uniform(n), cost, {.epsilon = eps}).plan;
    for (size_t e = 0; e < plan.values.size(); ++e) CHECK(std::abs(plan.values[e] - expected.values[e]) < 1e-12);
  }
}

TEST_CASE("swap: EWR with the identity plan is LR, and the directions reduce to its gradient", "[swap]") {
  const int64_t n = 15, p = 40;
  auto problem = random_problem(n, p, 6, 0.05);
  Matrix identity(n, n);
  for (int64_t i = 0; i < n; ++i) identity(i, i) = 1.0 / n;
  Generator gen(7);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<double> w = random_vector(p, gen);
    const double lr = prune::objective_lr(problem, w), ewr = prune::objective_ewr(problem, w, identity);
    CHECK(std::abs(ewr - lr) <= 1e-10 * std::abs(lr));
    std::vector<double> g = prune::gradient_lr(problem, w);
    std::vector<double> exact = prune::search_direction(problem, w, identity, prune::Direction::exact);
    std::vector<double> code = prune::search_direction(problem, w, identity, prune::Direction::code);
    for (int64_t j = 0; j < p; ++j) {
      CHECK(exact[j] == Approx(g[j]).epsilon(1e-10).margin(1e-10));
      CHECK(code[j] == Approx(g[j] / n).epsilon(1e-10).margin(1e-10));
    }
  }
  // And Q_LR is what its formula says: ½‖y − Gw‖² + (nλ/2)‖w − w̄‖².
  std::vector<double> w = random_vector(p, gen), r = prune::mat_vec(problem, w), d(p);
  for (int64_t i = 0; i < n; ++i) r[i] -= problem.y[i];
  for (int64_t j = 0; j < p; ++j) d[j] = w[j] - problem.w_bar[j];
  CHECK(prune::objective_lr(problem, w) == Approx(0.5 * sum_of_squares(r) + 0.5 * n * 0.05 * sum_of_squares(d)));
}

TEST_CASE("swap: for a fixed plan, EWR is LR on the smoothed targets n Πᵀy up to a constant", "[swap]") {
  const int64_t n = 14, p = 25;
  auto problem = random_problem(n, p, 8, 0.02);
  Generator gen(9);
  Matrix cost = prune::transport_cost_matrix(problem, random_vector(p, gen));
  double mean = std::accumulate(cost.values.begin(), cost.values.end(), 0.0) / static_cast<double>(n * n);
  Matrix plan = sinkhorn_plan(cost, 0.2 * mean);
  std::vector<double> smoothed(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) smoothed[j] += n * plan(i, j) * problem.y[i];
  auto rest = [&](const std::vector<double>& w) {
    std::vector<double> r = prune::mat_vec(problem, w), d(p);
    for (int64_t j = 0; j < n; ++j) r[j] -= smoothed[j];
    for (int64_t j = 0; j < p; ++j) d[j] = w[j] - problem.w_bar[j];
    return prune::objective_ewr(problem, w, plan) - 0.5 * sum_of_squares(r) -
           0.5 * n * problem.lambda * sum_of_squares(d);
  };
  const double c1 = rest(random_vector(p, gen)), c2 = rest(random_vector(p, gen, 3.0));
  CHECK(c1 == Approx(c2).epsilon(1e-9));
}

TEST_CASE("swap: the exact direction is the gradient of Q_EWR (central differences)", "[swap]") {
  const int64_t n = 10, p = 18;
  auto problem = random_problem(n, p, 10, 0.03);
  Generator gen(11);
  std::vector<double> w = random_vector(p, gen);
  Matrix cost = prune::transport_cost_matrix(problem, w);
  double mean = std::accumulate(cost.values.begin(), cost.values.end(), 0.0) / static_cast<double>(n * n);
  Matrix plan = sinkhorn_plan(cost, 0.5 * mean);
  std::vector<double> grad = prune::search_direction(problem, w, plan, prune::Direction::exact);
  std::vector<double> code = prune::search_direction(problem, w, plan, prune::Direction::code);
  double worst = 0.0, disagreement = 0.0;
  for (int64_t j = 0; j < p; ++j) {
    const double h = 1e-5 * (1.0 + std::abs(w[j]));
    std::vector<double> plus = w, minus = w;
    plus[j] += h, minus[j] -= h;
    const double fd =
        (prune::objective_ewr(problem, plus, plan) - prune::objective_ewr(problem, minus, plan)) / (2 * h);
    worst = std::max(worst, std::abs(fd - grad[j]) / std::max(1.0, std::abs(fd)));
    disagreement = std::max(disagreement, std::abs(n * code[j] - grad[j]) / std::max(1.0, std::abs(grad[j])));
  }
  CHECK(worst < 1e-5);
  CHECK(disagreement > 1e-2);  // not the gradient, even scaled by n (docs/algorithms/swap.md#the-code-solver)
}

TEST_CASE("swap: H_k keeps exactly k entries, the lower index among ties, and is idempotent", "[swap]") {
  Generator gen(12);
  std::vector<double> x = random_vector(50, gen);
  for (int64_t k : {0, 1, 7, 25, 50}) {
    std::vector<double> h = prune::hard_threshold(x, k);
    CHECK(count(prune::top_k_support(x, k)) == k);
    CHECK(std::count_if(h.begin(), h.end(), [](double v) { return v != 0.0; }) == k);
    CHECK(prune::hard_threshold(h, k) == h);
    double smallest_kept = INFINITY, largest_dropped = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (h[i] != 0.0)
        smallest_kept = std::min(smallest_kept, std::abs(x[i]));
      else
        largest_dropped = std::max(largest_dropped, std::abs(x[i]));
    }
    CHECK(smallest_kept >= largest_dropped);
  }
  // Ties: |−2| = |2| = |2|; keeping two of the three keeps the two lower indices.
  const std::vector<double> tied = {1.0, -2.0, 0.5, 2.0, 2.0, 0.0};
  CHECK(prune::top_k_support(tied, 2) == std::vector<uint8_t>{0, 1, 0, 1, 0, 0});
  // Already sparse: zeros compete by index (exactly k survive, even when k exceeds the non-zeros).
  CHECK(prune::top_k_support({0.0, 3.0, 0.0, 0.0}, 3) == std::vector<uint8_t>{1, 1, 1, 0});
  CHECK_THROWS_AS(prune::top_k_support(x, 51), Error);
}

TEST_CASE("swap: every step up to τ_c keeps the top-k support", "[swap]") {
  Generator gen(13);
  for (int trial = 0; trial < 5; ++trial) {
    const int64_t p = 60, k = 20;
    std::vector<double> w = random_vector(p, gen), d = random_vector(p, gen, 0.3);
    const double tau_c = prune::critical_step(w, d, k);
    INFO("trial " << trial << ", tau_c " << tau_c);
    REQUIRE(tau_c > 0.0);
    const std::vector<uint8_t> support = prune::top_k_support(w, k);
    for (int s = 0; s <= 200; ++s) {
      std::vector<double> x(p);
      const double tau = tau_c * s / 200.0;
      for (int64_t i = 0; i < p; ++i) x[i] = w[i] - tau * d[i];
      REQUIRE(prune::top_k_support(x, k) == support);
    }
    // τ_c is the boundary the bisection found: a step a little beyond it changes the support.
    std::vector<double> x(p);
    for (int64_t i = 0; i < p; ++i) x[i] = w[i] - 1.01 * tau_c * d[i];
    if (tau_c < 100.0) CHECK(prune::top_k_support(x, k) != support);
  }
  // max_i w_i/(d_i + 1e-16) ≤ 0: τ_c = 0 (the stage then falls back to 1/L).
  CHECK(prune::critical_step({1.0, -1.0}, {-1.0, 1.0}, 1) == 0.0);
}

TEST_CASE("swap: an IHT step of length 1/L never raises Q for a k-sparse w", "[swap]") {
  const int64_t n = 20, p = 60, k = 12;
  auto problem = random_problem(n, p, 14, 0.01);
  // L against the dense eigenvalue: power iteration converges to σ_max² from below.
  const double L = prune::lipschitz_constant(problem, 200);
  double sigma2 = 0.0;  // σ_max(G)² by a long power iteration from another start
  std::vector<double> v(p, 1.0);
  for (int it = 0; it < 2000; ++it) {
    const double length = std::sqrt(sum_of_squares(v));
    for (double& x : v) x /= length;
    v = prune::mat_t_vec(problem, prune::mat_vec(problem, v));
    sigma2 = std::sqrt(sum_of_squares(v));
  }
  CHECK(L <= (sigma2 + n * 0.01) * (1 + 1e-9));
  CHECK(L == Approx(sigma2 + n * 0.01).epsilon(1e-2));
  Generator gen(15);
  for (bool ewr : {false, true}) {
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<double> w = prune::hard_threshold(random_vector(p, gen), k);
      Matrix plan(n, n);
      if (ewr) {
        Matrix cost = prune::transport_cost_matrix(problem, w);
        double mean = std::accumulate(cost.values.begin(), cost.values.end(), 0.0) / static_cast<double>(n * n);
        plan = sinkhorn_plan(cost, mean);
      } else {
        for (int64_t i = 0; i < n; ++i) plan(i, i) = 1.0 / n;
      }
      std::vector<double> g = prune::search_direction(problem, w, plan, prune::Direction::exact), x(p);
      for (int64_t j = 0; j < p; ++j) x[j] = w[j] - g[j] / (sigma2 + n * 0.01);
      CHECK(prune::objective_ewr(problem, prune::hard_threshold(x, k), plan) <= prune::objective_ewr(problem, w, plan));
    }
  }
}

TEST_CASE("swap: the noise changes exactly floor(prop·p) entries of every row, seeded", "[swap]") {
  Generator gen(16);
  const Tensor G = Tensor::randn({6, 101}, gen);
  for (double prop : {0.1, 0.25, 0.5, 1.0}) {
    Tensor noisy = G.clone(), again = G.clone();
    Generator a(17), b(17);
    prune::add_gradient_noise(noisy, 2.0, prop, a);
    prune::add_gradient_noise(again, 2.0, prop, b);
    CHECK(std::equal(noisy.data(), noisy.data() + noisy.numel(), again.data()));
    for (int64_t i = 0; i < 6; ++i) {
      int64_t changed = 0;
      for (int64_t j = 0; j < 101; ++j) changed += noisy.data()[i * 101 + j] != G.data()[i * 101 + j];
      CHECK(changed == prune::prune_count(prop, 101));
    }
  }
  // The noise's spread is c·std(row): with every entry perturbed, var(noisy − g) ≈ c²·var(g).
  Tensor big = Tensor::randn({1, 20000}, gen), noisy = big.clone();
  prune::add_gradient_noise(noisy, 3.0, 1.0, gen);
  double var = 0.0;
  for (int64_t j = 0; j < 20000; ++j) var += std::pow(noisy.data()[j] - big.data()[j], 2) / 20000;
  CHECK(std::sqrt(var) == Approx(3.0).epsilon(0.03));
  Tensor unchanged = G.clone();
  prune::add_gradient_noise(unchanged, 0.0, 0.5, gen);
  CHECK(std::equal(unchanged.data(), unchanged.data() + unchanged.numel(), G.data()));
  CHECK_THROWS_AS(prune::add_gradient_noise(unchanged, 1.0, 1.5, gen), Error);
}

TEST_CASE("swap: the cubic schedule starts at s_0, ends at the target and never decreases", "[swap]") {
  for (int64_t stages : {2, 5, 14}) {
    CHECK(prune::cubic_sparsity(1, stages, 0.9) == 0.0);
    CHECK(prune::cubic_sparsity(stages, stages, 0.9) == Approx(0.9).epsilon(1e-15));
    for (int64_t t = 2; t <= stages; ++t)
      CHECK(prune::cubic_sparsity(t, stages, 0.9) >= prune::cubic_sparsity(t - 1, stages, 0.9));
  }
  CHECK(prune::cubic_sparsity(1, 1, 0.7) == 0.7);  // one stage: one-shot
  CHECK(prune::cubic_sparsity(2, 3, 0.8) == Approx(0.8 - 0.8 / 8));
  CHECK_THROWS_AS(prune::cubic_sparsity(4, 3, 0.8), Error);
}

TEST_CASE("swap: the official code's stage from the dense weights is magnitude pruning (d = 0)", "[swap]") {
  const int64_t n = 12, p = 80, k = 20;
  auto problem = random_problem(n, p, 18);
  for (bool transport : {false, true}) {
    prune::SwapOptions o{.transport = transport, .solver = prune::Solver::code};
    prune::SwapStageResult r = prune::swap_stage(problem, problem.w_bar, k, o);
    CHECK(r.support == prune::top_k_support(problem.w_bar, k));
    CHECK(r.w == prune::hard_threshold(problem.w_bar, k));
    CHECK(r.log.magnitude_overlap == 1.0);
    if (!transport) CHECK(r.log.objective_before == 0.0);  // y = G w̄ exactly: no residual
  }
}

TEST_CASE("swap: the code stage from sparse weights keeps exactly k, old values unless update_weights", "[swap]") {
  const int64_t n = 12, p = 80, k = 15;
  auto problem = random_problem(n, p, 19);
  const std::vector<double> w = prune::hard_threshold(problem.w_bar, 30);  // a previous stage's result
  for (prune::Direction direction : {prune::Direction::code, prune::Direction::exact})
    for (bool update : {false, true}) {
      prune::SwapOptions o{.epsilon = 5.0, .solver = prune::Solver::code, .direction = direction,
                           .update_weights = update, .inner_iters = 3};
      prune::SwapStageResult r = prune::swap_stage(problem, w, k, o);
      CHECK(count(r.support) == k);
      CHECK(r.log.inner_iterations >= 1);
      CHECK(r.log.plan == "sinkhorn");
      for (int64_t j = 0; j < p; ++j) {
        if (!r.support[j]) CHECK(r.w[j] == 0.0);
        if (r.support[j] && !update) CHECK(r.w[j] == w[j]);
      }
      CHECK(r.log.tau_c >= 0.0);
      CHECK(std::isfinite(r.log.objective_after));
    }
}

TEST_CASE("swap: the principled solver descends from magnitude and ends optimal on its support", "[swap]") {
  const int64_t n = 30, p = 120, k = 24;
  Generator gen(20);
  // Correlated columns make magnitude a poor support: G = A B with B mixing neighbouring columns.
  Tensor G = Tensor::randn({n, p}, gen);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = p - 1; j > 0; --j) G.data()[i * p + j] += 0.8f * G.data()[i * p + j - 1];
  auto problem = prune::swap_problem(G, random_vector(p, gen), 0.01);
  prune::SwapOptions lr{.transport = false, .inner_iters = 20};
  prune::SwapStageResult r = prune::swap_stage_exact(problem, problem.w_bar, k, lr);
  CHECK(count(r.support) == k);
  const double magnitude = prune::objective_lr(problem, prune::hard_threshold(problem.w_bar, k));
  CHECK(r.log.objective_before == Approx(magnitude));
  CHECK(r.log.objective_after == Approx(prune::objective_lr(problem, r.w)));
  CHECK(r.log.objective_after < 0.9 * magnitude);
  // KKT on the support: the gradient vanishes there (the ridge re-solve), up to CG's tolerance.
  std::vector<double> g = prune::gradient_lr(problem, r.w);
  double on = 0.0, all = 0.0;
  for (int64_t j = 0; j < p; ++j) (r.support[j] ? on : all) += g[j] * g[j];
  CHECK(std::sqrt(on) < 1e-6 * std::sqrt(all));
  // More support updates never hurt: no inner iteration (the re-solve on the magnitude support)
  // is an upper bound, and plain IHT (no re-solve) descends too.
  prune::SwapOptions ridge = lr;
  ridge.inner_iters = 0;
  const double ridge_q = prune::swap_stage_exact(problem, problem.w_bar, k, ridge).log.objective_after;
  CHECK(r.log.objective_after <= ridge_q * (1 + 1e-12));
  CHECK(ridge_q < magnitude);
  prune::SwapOptions iht = lr;
  iht.resolve_iters = 0;
  prune::SwapStageResult plain = prune::swap_stage_exact(problem, problem.w_bar, k, iht);
  CHECK(plain.log.objective_after < magnitude);
  // EWR: the same machinery with the plan; its objective with the last plan, from the first's.
  prune::SwapOptions ewr{.epsilon = 1.0, .relative_epsilon = true, .inner_iters = 5};
  prune::SwapStageResult e = prune::swap_stage_exact(problem, problem.w_bar, k, ewr);
  CHECK(count(e.support) == k);
  CHECK(e.log.plan == "sinkhorn");
  CHECK(e.log.objective_after < e.log.objective_before);
  CHECK(e.log.plan_entropy > std::log(n));  // entropic: between a permutation's log n and 2 log n
  CHECK(e.log.plan_entropy < 2 * std::log(n));
}

TEST_CASE("woodfisher: the Woodbury recursion gives the inverse of δI + GᵀG/n", "[swap]") {
  Generator gen(21);
  const int64_t n = 23, p = 40;
  Tensor G = Tensor::randn({n, p}, gen);
  for (int64_t chunk : {1, 4, 64}) {
    prune::WoodFisherOptions o{.damp = 0.1, .chunk = chunk};
    const int64_t begin = 5, size = 17;
    std::vector<float> inv = prune::woodfisher_block_inverse(G, begin, size, o);
    std::vector<double> expected = dense_inverse(damped_fisher(G, begin, size, 0.1), size);
    double worst = 0.0, scale = 0.0;
    for (int64_t e = 0; e < size * size; ++e) {
      worst = std::max(worst, std::abs(inv[e] - expected[e]));
      scale = std::max(scale, std::abs(expected[e]));
    }
    INFO("chunk " << chunk);
    CHECK(worst < 1e-4 * scale);
  }
  CHECK_THROWS_AS(prune::woodfisher_block_inverse(G, 30, 20, {}), Error);
  CHECK_THROWS_AS(prune::woodfisher_block_inverse(G, 0, 4, {.damp = 0.0}), Error);
}

TEST_CASE("woodfisher: saliency θ²/(2[F⁻¹]_qq) per block, ranking, and the OBS correction", "[swap]") {
  Generator gen(22);
  const int64_t n = 30, p = 24;
  Tensor G = Tensor::randn({n, p}, gen);
  std::vector<double> w = random_vector(p, gen);
  std::vector<uint8_t> active(p, 1);
  active[3] = 0;  // already pruned: stays pruned, whatever its value
  w[3] = 0.0;
  const std::vector<int64_t> sizes = {10, 14};  // two tensors; blocks of 8: [0,8) [8,10) [10,18) [18,24)
  prune::WoodFisherOptions o{.block = 8, .damp = 0.05, .update_weights = false};
  prune::WoodFisherResult r = prune::woodfisher_stage(G, w, active, sizes, 12, o);
  CHECK(count(r.support) == 12);
  CHECK(r.support[3] == 0);
  CHECK(std::isinf(r.saliency[3]));
  const std::vector<std::pair<int64_t, int64_t>> blocks = {{0, 8}, {8, 2}, {10, 8}, {18, 6}};
  for (auto [begin, size] : blocks) {
    // The reference masks pruned entries' gradients: zero column 3 before forming F.
    Tensor masked = G.clone();
    for (int64_t i = 0; i < n; ++i) masked.data()[i * p + 3] = 0.f;
    std::vector<double> inv = dense_inverse(damped_fisher(masked, begin, size, 0.05), size);
    for (int64_t q = 0; q < size; ++q)
      if (begin + q != 3)
        CHECK(r.saliency[begin + q] == Approx(w[begin + q] * w[begin + q] / (2 * inv[q * size + q])).epsilon(1e-3));
  }
  std::vector<double> kept_scores, dropped_scores;
  for (int64_t j = 0; j < p; ++j)
    if (active[j]) (r.support[j] ? kept_scores : dropped_scores).push_back(r.saliency[j]);
  CHECK(*std::min_element(kept_scores.begin(), kept_scores.end()) >=
        *std::max_element(dropped_scores.begin(), dropped_scores.end()));
  for (int64_t j = 0; j < p; ++j) CHECK(r.w[j] == (r.support[j] ? w[j] : 0.0));  // no correction unless asked

  // OBS on one weight: pruning q alone with δθ = −θ_q F⁻¹e_q/[F⁻¹]_qq costs ½δθᵀFδθ = the saliency.
  const int64_t block = 8;
  std::vector<uint8_t> all(p, 1);
  prune::WoodFisherResult one =
      prune::woodfisher_stage(G, w, all, {p}, p - 1, {.block = block, .damp = 0.05, .update_weights = true});
  int64_t q = std::find(one.support.begin(), one.support.end(), uint8_t{0}) - one.support.begin();
  const int64_t begin = q / block * block;
  std::vector<double> F = damped_fisher(G, begin, block, 0.05), delta(block);
  for (int64_t a = 0; a < block; ++a) delta[a] = one.w[begin + a] - w[begin + a];
  double cost = 0.0;
  for (int64_t a = 0; a < block; ++a)
    for (int64_t b = 0; b < block; ++b) cost += 0.5 * delta[a] * F[a * block + b] * delta[b];
  CHECK(one.w[q] == 0.0);
  CHECK(cost == Approx(one.saliency[q]).epsilon(1e-3));
  for (int64_t j = 0; j < p; ++j)
    if (j < begin || j >= begin + block) CHECK(one.w[j] == w[j]);  // other blocks untouched
  CHECK_THROWS_AS(prune::woodfisher_stage(G, w, active, sizes, 24, o), Error);  // only 23 unpruned
}

TEST_CASE("swap_prune: stages of the cubic schedule, exact sparsity, fine-tuning between stages", "[swap]") {
  Generator gen(23);
  nn::ModelOptions options{.in_channels = 1, .num_classes = 4, .input_size = 6, .widths = {12}};
  auto model = nn::make_model("mlp", options, gen);
  auto set = data::make_synthetic({.train_size = 96, .test_size = 0, .image_shape = {1, 6, 6}, .num_classes = 4});
  const auto names = prune::prunable_parameters(*model);
  const int64_t p = 36 * 12 + 12 * 4;
  for (prune::StageMethod method : {prune::StageMethod::swap, prune::StageMethod::lr, prune::StageMethod::woodfisher,
                                    prune::StageMethod::magnitude}) {
    auto copy = model->clone();
    data::DataLoader samples(set.train, {},
                             {.batch_size = 40, .shuffle = true, .drop_last = true, .seed = 1, .num_workers = 0});
    prune::SwapPruneOptions o;
    o.method = method;
    o.stages = 4;
    o.noise_scale = 1.0;
    o.noise_prop = 0.5;
    o.swap.epsilon = 1.0;
    o.swap.relative_epsilon = true;
    o.woodfisher.block = 50;
    o.woodfisher.damp = 0.1;  // float32 Woodbury (as the reference): δ must not be tiny next to ‖g‖² here
    std::vector<int64_t> called;
    auto logs = prune::swap_prune(*copy, names, {.sparsity = 0.8}, data::endless_batches(samples, "swap_prune"), o,
                                  [&](int64_t t) { called.push_back(t); });
    REQUIRE(logs.size() == 4);
    CHECK(called == std::vector<int64_t>{1, 2, 3});
    CHECK(logs[0].sparsity == 0.0);
    CHECK(logs[0].kept == p);
    for (size_t t = 1; t < logs.size(); ++t) CHECK(logs[t].kept < logs[t - 1].kept);
    CHECK(logs.back().kept == p - prune::prune_count(0.8, p));
    int64_t kept = 0;
    for (const std::string& name : names) {
      REQUIRE(copy->has_mask(name));
      Tensor m = copy->mask(name), v = copy->parameter(name);
      for (int64_t i = 0; i < m.numel(); ++i) {
        kept += m.data()[i] != 0.f;
        if (m.data()[i] == 0.f) CHECK(v.data()[i] == 0.f);
      }
    }
    CHECK(kept == logs.back().kept);
  }
  data::DataLoader samples(set.train, {}, {.batch_size = 40, .shuffle = true, .drop_last = true, .num_workers = 0});
  CHECK_THROWS_AS(prune::swap_prune(*model, names, {.sparsity = 0.5, .distribution = prune::Distribution::per_layer},
                                    data::endless_batches(samples, "swap_prune"), {}),
                  Error);
}

TEST_CASE("swap_prune one-shot on Fashion-MNIST: LR and SWAP beat magnitude pruning at 90% sparsity", "[swap]") {
  data::OpenOptions open;
  open.dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(open.dir + "/train-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST is not installed in " << open.dir << " (run `make deps`): test skipped");
    return;
  }
  data::DatasetSplits splits = data::open_dataset("fashion-mnist", open);
  data::Compose transform = data::standard_transforms(splits, false);
  // MLPNet (784-40-20-10, no biases), two epochs of Adam on the full training set (about 1 s).
  Generator gen(5);
  auto model = nn::make_model("mlpnet", {.in_channels = 1, .num_classes = 10, .input_size = 28}, gen);
  data::DataLoader train(splits.train, transform, {.batch_size = 128, .shuffle = true, .seed = 1, .num_workers = 1});
  optim::Adam adam({{.params = model->named_parameters(), .lr = 3e-3}}, {.lr = 3e-3});
  model->train();
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    train.start_epoch(epoch);
    while (auto b = train.next()) {
      adam.zero_grad();
      cross_entropy((*model)(b->images), b->labels).backward();
      adam.step();
    }
  }
  auto accuracy = [&](nn::Module& m) {  // on the first 3000 test images
    data::DataLoader test(splits.test, transform, {.batch_size = 500, .num_workers = 1});
    NoGradGuard no_grad;
    m.eval();
    test.start_epoch(0);
    int64_t correct = 0, seen = 0;
    for (int batch = 0; batch < 6; ++batch) {
      auto b = test.next();
      REQUIRE(b.has_value());
      Tensor logits = m(b->images);
      for (int64_t i = 0; i < logits.size(0); ++i) {
        const float* row = logits.data() + i * 10;
        correct += std::max_element(row, row + 10) - row == b->labels[i];
      }
      seen += logits.size(0);
    }
    return 100.0 * static_cast<double>(correct) / static_cast<double>(seen);
  };
  const auto names = prune::prunable_parameters(*model);
  const prune::SparsityTarget target{.sparsity = 0.9};
  auto magnitude = model->clone();
  prune::apply_masks(*magnitude, prune::masks_from_scores(prune::magnitude_scores(*magnitude, names), target));
  auto pruned = [&](prune::StageMethod method) {
    auto copy = model->clone();
    data::DataLoader samples(splits.train, transform,
                             {.batch_size = 300, .shuffle = true, .drop_last = true, .seed = 4, .num_workers = 0});
    prune::SwapPruneOptions o;
    o.method = method;
    o.swap.epsilon = 0.3;  // × mean(M)
    o.swap.relative_epsilon = true;
    o.swap.inner_iters = 0;  // EWR: one plan, at LR's re-solve on the magnitude support
    prune::swap_prune(*copy, names, target, data::endless_batches(samples, "swap_prune"), o);
    return accuracy(*copy);
  };
  const double dense = accuracy(*model), magnitude_acc = accuracy(*magnitude);
  const double lr = pruned(prune::StageMethod::lr), swap = pruned(prune::StageMethod::swap);
  INFO("dense " << dense << ", magnitude " << magnitude_acc << ", lr " << lr << ", swap " << swap);
  // Measured: dense 85.3, magnitude 58.5, LR 68.2; SWAP 67.9 / 61.6 / 53.7 at ε = 0.1 / 0.3 / 1 × mean(M):
  // without noise the plan's smoothing of the targets costs accuracy, and ε → 0 gives LR back.
  CHECK(lr > magnitude_acc + 3.0);
  CHECK(swap > magnitude_acc);
}
