// Exact (network simplex) and entropic (stabilised Sinkhorn) optimal transport
// (docs/algorithms/intra-fusion.md#optimal-transport-solvers; see ot.hpp for the departures from the
// reference codes).
#include "prune/ot.hpp"

#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "core/parallel.hpp"

namespace shears::prune::ot {
namespace {

void check_problem(const char* where, const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost) {
  SHEARS_CHECK(!a.empty() && !b.empty(), where, "empty measure: ", a.size(), " source and ", b.size(),
               " target masses");
  SHEARS_CHECK(cost.rows == static_cast<int64_t>(a.size()) && cost.cols == static_cast<int64_t>(b.size()), where,
               "cost matrix is ", cost.rows, "x", cost.cols, ", expected ", a.size(), "x", b.size());
  for (double v : cost.values) SHEARS_CHECK(std::isfinite(v), where, "non-finite cost ", v);
  for (const auto* m : {&a, &b})
    for (double v : *m)
      SHEARS_CHECK(std::isfinite(v) && v >= 0, where, "masses must be finite and non-negative, got ", v);
  double sa = std::accumulate(a.begin(), a.end(), 0.0), sb = std::accumulate(b.begin(), b.end(), 0.0);
  SHEARS_CHECK(sa > 0 && std::abs(sa - sb) <= 1e-6 * sa, where, "source and target totals differ: ", sa, " vs ", sb,
               " (hint: normalise both measures)");
}

// m scaled to integers summing exactly to `total` (largest remainders, ties to the lower index).
std::vector<int64_t> integer_masses(const std::vector<double>& m, int64_t total) {
  double sum = std::accumulate(m.begin(), m.end(), 0.0);
  std::vector<int64_t> out(m.size());
  std::vector<double> rest(m.size());
  int64_t given = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    double x = m[i] / sum * static_cast<double>(total);
    out[i] = static_cast<int64_t>(std::floor(x));
    rest[i] = x - static_cast<double>(out[i]);
    given += out[i];
  }
  std::vector<size_t> order(m.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return rest[x] > rest[y]; });
  // total ≤ 2^50 keeps every x exact to well under one unit, so the floors lose less than one unit
  // per entry and never overshoot.
  SHEARS_ASSERT(given <= total && total - given <= static_cast<int64_t>(m.size()));
  for (size_t k = 0; given < total; ++k, ++given) ++out[order[k]];
  return out;
}

// log Σ exp(x_k) without overflow; −∞ for an empty or all −∞ input.
double log_sum_exp(const std::vector<double>& x) {
  double top = -std::numeric_limits<double>::infinity();
  for (double v : x) top = std::max(top, v);
  if (std::isinf(top)) return top;
  double s = 0.0;
  for (double v : x) s += std::exp(v - top);
  return top + std::log(s);
}

// Log-domain half steps: f_i = ε log a_i − ε LSE_j((g_j − C_ij)/ε) and the same for g, with
// f + g − C ≤ 0 kept implicit. Cheap to call once; n·k exps each.
void log_update_rows(std::vector<double>& f, const std::vector<double>& g, const std::vector<double>& a,
                     const Matrix& cost, double eps) {
  std::vector<double> terms(g.size());
  for (int64_t i = 0; i < cost.rows; ++i) {
    for (int64_t j = 0; j < cost.cols; ++j) terms[j] = (g[j] - cost(i, j)) / eps;
    f[i] = eps * std::log(a[i]) - eps * log_sum_exp(terms);
  }
}

void log_update_cols(const std::vector<double>& f, std::vector<double>& g, const std::vector<double>& b,
                     const Matrix& cost, double eps) {
  // Column-wise maxima and sums accumulated row by row (the matrix is row-major).
  const int64_t n = cost.rows, k = cost.cols;
  std::vector<double> top(k, -std::numeric_limits<double>::infinity()), sum(k, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) top[j] = std::max(top[j], (f[i] - cost(i, j)) / eps);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) sum[j] += std::exp((f[i] - cost(i, j)) / eps - top[j]);
  for (int64_t j = 0; j < k; ++j) g[j] = eps * std::log(b[j]) - eps * (top[j] + std::log(sum[j]));
}

// K_ij = exp((f_i + g_j − C_ij)/ε): the plan's kernel with the potentials absorbed, in float32
// (row-major, rows × cols): the iterations stream it twice each, so half the bytes is nearly half
// the time; the scalings and every sum stay in float64.
void absorbed_kernel(std::vector<float>& kernel, const std::vector<double>& f, const std::vector<double>& g,
                     const Matrix& cost, double eps) {
  const int64_t k = cost.cols;
  parallel_for(cost.rows, std::max<int64_t>(4096 / std::max<int64_t>(k, 1), 1), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < k; ++j)
        kernel[static_cast<size_t>(i * k + j)] = static_cast<float>(std::exp((f[i] + g[j] - cost(i, j)) / eps));
  });
}

bool scalings_in_range(const std::vector<double>& s) {
  // Kernel entries are about plan entries over u_i·v_j; with u, v in [1e-30, 1e30] the entries
  // that matter stay far above float32's smallest normal number (1e-38).
  constexpr double kLimit = 1e30;
  for (double v : s)
    if (!(v < kLimit && v > 1.0 / kLimit)) return false;
  return true;
}

// Σ x_j y_j over independent partial sums, so that the loop vectorises (a single running sum is
// one long chain of dependent additions).
double dot(const float* x, const double* y, int64_t size) {
  constexpr int kLanes = 16;  // four AVX2 chains of FMAs in flight
  double partial[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= size; j += kLanes)
    for (int t = 0; t < kLanes; ++t) partial[t] += static_cast<double>(x[j + t]) * y[j + t];
  double s = 0.0;
  for (; j < size; ++j) s += static_cast<double>(x[j]) * y[j];
  for (double p : partial) s += p;
  return s;
}

// Over-relaxed scaling u ← u^{1−ω} (a/Kv)^ω (and the same for v) keeps the plan as its fixed point
// and, near ω = 2/(1 + √(1 − θ)) for plain Sinkhorn's linear rate θ, needs about the square root of
// the iterations (SOR theory). Young's relation (λ + ω − 1)² = λω²θ recovers θ from the rate λ
// observed under ω. Steps up are at most 0.2 and ω stays ≤ 1.95 (transients mislead the
// estimate); a window without progress steps back toward plain Sinkhorn.
double next_relaxation(double omega, double rate) {
  constexpr double kStep = 0.2, kMax = 1.95;
  if (!(rate < 1.0)) return std::max(1.0, omega - kStep);
  const double theta = std::min((rate + omega - 1) * (rate + omega - 1) / (rate * omega * omega), 1.0 - 1e-12);
  const double target = 2.0 / (1.0 + std::sqrt(1.0 - theta));
  return target > omega ? std::min({kMax, target, omega + kStep}) : std::max(1.0, target);
}

double relaxed(double previous, double plain, double omega) {
  return omega == 1.0 ? plain : previous * std::pow(plain / previous, omega);
}

// Whether the marginal error has stopped falling: no new minimum, by 0.1% or more, in `window`
// iterations. A linear rate, however slow, keeps setting new minima; an error held up by the
// float32 kernel's rounding wanders around its floor without going below it.
// Over-relaxed errors oscillate as ω adapts, so they get a longer window.
struct Progress {
  int64_t window = 100;
  double best = std::numeric_limits<double>::infinity();
  int64_t best_iteration = -1;
  bool stalled(double error, int64_t iteration) {
    if (best_iteration < 0 || error < 0.999 * best) {
      best = std::min(best, error);
      best_iteration = iteration;
    }
    return iteration - best_iteration >= window;
  }
};

bool finite_positive(const std::vector<double>& s) {
  for (double v : s)
    if (!(v > 0 && std::isfinite(v))) return false;
  return true;
}


}  // namespace

Matrix::Matrix(int64_t rows_, int64_t cols_, double fill)
    : rows(rows_), cols(cols_), values(static_cast<size_t>(rows_ * cols_), fill) {}

std::vector<double> Matrix::row_sums() const {
  std::vector<double> s(static_cast<size_t>(rows), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) s[i] += (*this)(i, j);
  return s;
}

std::vector<double> Matrix::col_sums() const {
  std::vector<double> s(static_cast<size_t>(cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) s[j] += (*this)(i, j);
  return s;
}

double transport_cost(const Matrix& plan, const Matrix& cost) {
  SHEARS_CHECK(plan.rows == cost.rows && plan.cols == cost.cols, "transport_cost", "plan is ", plan.rows, "x",
               plan.cols, " but cost is ", cost.rows, "x", cost.cols);
  double s = 0.0;
  for (size_t k = 0; k < plan.values.size(); ++k) s += plan.values[k] * cost.values[k];
  return s;
}

Matrix emd(const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost) {
  check_problem("emd", a, b, cost);
  const int64_t n = cost.rows, k = cost.cols;
  int64_t scale = n * k;
  while (scale <= (int64_t{1} << 49)) scale *= 2;  // S in (2^49, 2^50]
  std::vector<int64_t> supply = integer_masses(a, scale), demand = integer_masses(b, scale);

  using Graph = lemon::SmartDigraph;
  Graph graph;
  graph.reserveNode(static_cast<int>(n + k));
  graph.reserveArc(static_cast<int>(n * k));
  std::vector<Graph::Node> nodes;
  for (int64_t v = 0; v < n + k; ++v) nodes.push_back(graph.addNode());
  Graph::NodeMap<int64_t> supplies(graph);
  for (int64_t i = 0; i < n; ++i) supplies[nodes[i]] = supply[i];
  for (int64_t j = 0; j < k; ++j) supplies[nodes[n + j]] = -demand[j];
  Graph::ArcMap<double> costs(graph);
  std::vector<Graph::Arc> arcs;  // arc i·K + j carries source i to target j
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      arcs.push_back(graph.addArc(nodes[i], nodes[n + j]));
      costs[arcs.back()] = cost(i, j);
    }
  using Simplex = lemon::NetworkSimplex<Graph, int64_t, double>;
  Simplex simplex(graph);
  simplex.costMap(costs).supplyMap(supplies);
  [[maybe_unused]] Simplex::ProblemType status = simplex.run(Simplex::BLOCK_SEARCH);
  SHEARS_ASSERT(status == Simplex::OPTIMAL);  // balanced and complete bipartite: always feasible

  double total = std::accumulate(a.begin(), a.end(), 0.0);
  Matrix plan(n, k);
  for (int64_t e = 0; e < n * k; ++e)
    plan.values[e] = static_cast<double>(simplex.flow(arcs[e])) / static_cast<double>(scale) * total;
  return plan;
}

namespace {

// Kᵀu for the n×k kernel, threads taking column blocks of `grain` (each sum in one fixed order).
void transposed_product(const std::vector<float>& kernel, const std::vector<double>& u, int64_t n, int64_t k,
                        int64_t grain, std::vector<double>& ktu) {
  parallel_for(k, grain, [&](int64_t j0, int64_t j1) {
    std::fill(ktu.begin() + j0, ktu.begin() + j1, 0.0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {  // four rows per pass: a quarter of the loads and stores of ktu
      const float* r0 = &kernel[static_cast<size_t>(i * k)];
      const float *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
      for (int64_t j = j0; j < j1; ++j)
        ktu[j] += (static_cast<double>(r0[j]) * u[i] + static_cast<double>(r1[j]) * u[i + 1]) +
                  (static_cast<double>(r2[j]) * u[i + 2] + static_cast<double>(r3[j]) * u[i + 3]);
    }
    for (; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) ktu[j] += static_cast<double>(kernel[static_cast<size_t>(i * k + j)]) * u[i];
  });
}

// ‖x − a‖₁, or ‖x − a‖₂ with l2.
double marginal_norm(const std::vector<double>& x, const std::vector<double>& a, bool l2) {
  double e = 0.0;
  for (size_t i = 0; i < a.size(); ++i) e += l2 ? (x[i] - a[i]) * (x[i] - a[i]) : std::abs(x[i] - a[i]);
  return l2 ? std::sqrt(e) : e;
}

double row_error(const Matrix& plan, const std::vector<double>& a, bool l2) {
  return marginal_norm(plan.row_sums(), a, l2);
}

// The stabilised (and by default over-relaxed) scaling iterations for 0 < ε < ∞.
SinkhornResult scaling_iterations(const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost,
                                  const SinkhornOptions& options) {
  const double eps = options.epsilon;
  const int64_t n = cost.rows, k = cost.cols;
  SinkhornResult result;
  // Scaling iterations u = a / (K v), v = b / (Kᵀ u) on the kernel K = exp((f + g − C)/ε), two
  // matrix-vector products an iteration instead of 2·n·k exps. Whenever u or v leave
  // [1e-30, 1e30] they are absorbed into the potentials f, g (f += ε log u), a log-domain sweep
  // follows and K is rebuilt, so no entry that matters underflows even for small ε.
  std::vector<double> f(n, 0.0), g(k, 0.0), u(n, 1.0), v(k, 1.0), kv(n), ktu(k);
  // Threads split rows (K v) and column blocks (Kᵀ u), so every sum runs in one fixed order and
  // the result does not depend on the thread count. About 64k entries per chunk.
  const int64_t grain = std::max<int64_t>((int64_t{1} << 16) / std::max<int64_t>(k, 1), 1);
  std::vector<float> kernel(static_cast<size_t>(n * k));
  auto absorb = [&] {
    for (int64_t i = 0; i < n; ++i) f[i] += eps * std::log(u[i]);
    for (int64_t j = 0; j < k; ++j) g[j] += eps * std::log(v[j]);
    log_update_rows(f, g, a, cost, eps);
    log_update_cols(f, g, b, cost, eps);
    absorbed_kernel(kernel, f, g, cost, eps);
    std::fill(u.begin(), u.end(), 1.0);
    std::fill(v.begin(), v.end(), 1.0);
  };
  absorbed_kernel(kernel, f, g, cost, eps);  // exp(−C/ε); rows that underflow trigger an absorption
  result.converged = false;
  bool columns_exact = false;  // after a v update or an absorption (its log sweep ends with g)
  std::vector<double> u_before(n), v_before(k), errors;
  constexpr int64_t kWindow = 20;  // iterations between updates of ω; its second half gives the rate
  constexpr int64_t kRelaxedWindow = 1000;
  double omega = 1.0;
  bool relaxing = options.overrelaxation;
  Progress progress{relaxing ? kRelaxedWindow : 100};
  for (int64_t it = 1; it <= options.max_iterations; ++it) {
    parallel_for(n, grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) kv[i] = dot(&kernel[static_cast<size_t>(i * k)], v.data(), k);
    });
    // The columns are exact after each v update, so the row error of the current plan is
    // ‖u ⊙ Kv − a‖, which this product gives for free.
    // Each term in one expression, as before the L2 test existed: the compiler fuses u·Kv − a, and
    // storing u·Kv first would round it once more and move the L1 runs' ω and plans.
    double error = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = u[i] * kv[i] - a[i];
      error += options.l2_stop ? d * d : std::abs(d);
    }
    if (options.l2_stop) error = std::sqrt(error);
    if (columns_exact && error < options.tolerance) {
      result.converged = true;
      break;
    }
    const bool stalled = progress.stalled(error, it);
    if (stalled && !relaxing && columns_exact) {  // plain steps at the kernel's precision: done
      result.stagnated = true;
      break;
    }
    // Relaxed steps leave both marginals inexact: they stop well below the tolerance (or when
    // they stall) and plain steps finish, so the check above stays exact.
    errors.push_back(error);
    if (relaxing && (error < 0.1 * options.tolerance || stalled)) {
      relaxing = false;
      progress = Progress{100};
    }
    if (!relaxing) {
      omega = 1.0;
    } else if (it % kWindow == 0) {
      omega = next_relaxation(omega, std::pow(error / errors[errors.size() - 1 - kWindow / 2], 2.0 / kWindow));
    }
    u_before = u;
    v_before = v;
    for (int64_t i = 0; i < n; ++i) u[i] = relaxed(u[i], a[i] / kv[i], omega);
    transposed_product(kernel, u, n, k, std::max<int64_t>(grain * k / n, 1), ktu);
    for (int64_t j = 0; j < k; ++j) v[j] = relaxed(v[j], b[j] / ktu[j], omega);
    result.iterations = it;
    columns_exact = omega == 1.0;
    if (!scalings_in_range(u) || !scalings_in_range(v)) {
      if (!finite_positive(u) || !finite_positive(v)) {  // a row or column lost all mass
        u = u_before;
        v = v_before;
      }
      absorb();
    }
  }
  result.plan = Matrix(n, k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      result.plan(i, j) = u[i] * static_cast<double>(kernel[static_cast<size_t>(i * k + j)]) * v[j];
  // The last update may have converged without a check after it.
  result.converged =
      result.converged || (columns_exact && row_error(result.plan, a, options.l2_stop) < options.tolerance);
  return result;
}

}  // namespace

SinkhornResult sinkhorn(const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost,
                        const SinkhornOptions& options) {
  check_problem("sinkhorn", a, b, cost);
  const double eps = options.epsilon;
  SHEARS_CHECK(eps > 0 && options.max_iterations >= 1 && options.tolerance >= 0, "sinkhorn",
               "epsilon must be positive and max_iterations at least 1, got epsilon ", eps, " and max_iterations ",
               options.max_iterations);
  SinkhornResult result;
  if (eps <= 1e-10) {
    result.plan = emd(a, b, cost);
  } else if (std::isinf(eps)) {
    result.plan = Matrix(cost.rows, cost.cols);
    for (int64_t i = 0; i < cost.rows; ++i)
      for (int64_t j = 0; j < cost.cols; ++j) result.plan(i, j) = a[i] * b[j];
  } else {
    for (const auto* m : {&a, &b})
      for (double v : *m) SHEARS_CHECK(v > 0, "sinkhorn", "masses must be positive, got ", v);
    result = scaling_iterations(a, b, cost, options);
  }
  result.marginal_error = row_error(result.plan, a, options.l2_stop);
  return result;
}

}  // namespace shears::prune::ot
