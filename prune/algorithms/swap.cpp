// SWAP and its LR baseline on one stage's problem (docs/algorithms/swap.md); see swap.hpp for
// the two solvers and the departures from the official code. The driver over a model, the noise
// model and the schedule are in swap_prune.cpp.
#include "prune/algorithms/swap.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"

namespace shears::prune {
namespace {

double dot(const Vec& a, const Vec& b) { return std::inner_product(a.begin(), a.end(), b.begin(), 0.0); }

double norm(const Vec& a) { return std::sqrt(dot(a, a)); }

// G x from the columns (q, n) of G (row j = column j of G), skipping x's zeros: fixed blocks of
// columns (contiguous memory) add into their own n sums, four columns at a time, and the block sums
// are added in order, so the result does not depend on the thread count.
Vec times(const Tensor& columns, const Vec& x) {
  const int64_t q = columns.size(0), n = columns.size(1), width = 512;
  const int64_t blocks = (q + width - 1) / width;
  const kernels::Table& k = kernels::kernels();
  std::vector<Vec> partial(blocks);
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t block = b; block < e; ++block) {
      Vec& out = partial[block];
      out.assign(n, 0.0);
      std::vector<int64_t> nz;
      for (int64_t j = block * width; j < std::min(q, (block + 1) * width); ++j)
        if (x[j] != 0.0) nz.push_back(j);
      const float* c = columns.data();
      size_t t = 0;
      for (; t + 4 <= nz.size(); t += 4) {
        const double a[4] = {x[nz[t]], x[nz[t + 1]], x[nz[t + 2]], x[nz[t + 3]]};
        const float* g[4] = {c + nz[t] * n, c + nz[t + 1] * n, c + nz[t + 2] * n, c + nz[t + 3] * n};
        k.axpy4_f32_f64(a, g, out.data(), n);
      }
      for (; t < nz.size(); ++t) k.axpy_f32_f64(x[nz[t]], c + nz[t] * n, out.data(), n);
    }
  });
  Vec out(n, 0.0);
  for (const Vec& part : partial)
    for (int64_t i = 0; i < n; ++i) out[i] += part[i];
  return out;
}

// Gᵀ u: one dot product per column.
Vec times_t(const Tensor& columns, const Vec& u) {
  const int64_t q = columns.size(0), n = columns.size(1);
  const kernels::Table& k = kernels::kernels();
  Vec out(q);
  parallel_for(q, 64, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) out[j] = k.dot_f32_f64(columns.data() + j * n, u.data(), n);
  });
  return out;
}

double squared_distance(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

void check_weights(const char* where, const SwapProblem& problem, const Vec& w) {
  SHEARS_CHECK(static_cast<int64_t>(w.size()) == problem.p(), where, "weights have ", w.size(),
               " entries but G has ", problem.p(), " columns");
}

// Π as a stage uses it; the identity plan I/n of LR is never formed.
struct Plan {
  std::string kind = "identity";
  ot::Matrix pi;              // unless identity
  Vec col;                    // column sums c
  Vec targets;                // Πᵀ y
  double epsilon = 0, mean_cost = 0, entropy = 0, marginal_error = 0;
  int64_t iterations = 0;
  bool converged = true, stagnated = false;

  bool identity() const { return kind == "identity"; }

  // Σ_ij Π_ij (y_i − z_j)², evaluated directly (no cancellation when z ≈ y).
  double cost(const Vec& y, const Vec& z) const {
    const auto n = static_cast<int64_t>(y.size());
    double s = 0.0;
    if (identity()) {
      for (int64_t i = 0; i < n; ++i) s += (y[i] - z[i]) * (y[i] - z[i]);
      return s / static_cast<double>(n);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) s += pi(i, j) * (y[i] - z[j]) * (y[i] - z[j]);
    return s;
  }

  // Π v.
  Vec apply(const Vec& v) const {
    const auto n = static_cast<int64_t>(v.size());
    Vec out(n, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      if (identity()) {
        out[i] = v[i] / static_cast<double>(n);
        continue;
      }
      for (int64_t j = 0; j < n; ++j) out[i] += pi(i, j) * v[j];
    }
    return out;
  }
};

Plan plan_from_matrix(const SwapProblem& problem, const ot::Matrix& pi) {
  const int64_t n = problem.n();
  SHEARS_CHECK(pi.rows == n && pi.cols == n, "swap", "the plan is ", pi.rows, "x", pi.cols, ", expected ", n, "x", n);
  Plan plan;
  plan.kind = "given";
  plan.pi = pi;
  plan.col = pi.col_sums();
  plan.targets.assign(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) plan.targets[j] += pi(i, j) * problem.y[i];
  return plan;
}

Plan identity_plan(const SwapProblem& problem) {
  const int64_t n = problem.n();
  Plan plan;
  plan.col.assign(n, 1.0 / static_cast<double>(n));
  plan.targets = problem.y;
  for (double& t : plan.targets) t /= static_cast<double>(n);
  plan.entropy = std::log(static_cast<double>(n));
  return plan;
}

// The entropic plan between y and z = G w (Sinkhorn, prune/ot.hpp), or the identity for LR.
Plan make_plan(const SwapProblem& problem, const Vec& z, const SwapOptions& o) {
  if (!o.transport) return identity_plan(problem);
  const int64_t n = problem.n();
  ot::Matrix cost(n, n);
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double d = problem.y[i] - z[j];
      cost(i, j) = d * d;
      mean += d * d;
    }
  mean /= static_cast<double>(n * n);
  const double eps = o.relative_epsilon ? o.epsilon * mean : o.epsilon;
  const Vec mass(n, 1.0 / static_cast<double>(n));
  ot::SinkhornResult r =
      ot::sinkhorn(mass, mass, cost,
                   {eps, o.sinkhorn_iterations, o.sinkhorn_tolerance, o.sinkhorn_overrelaxation, o.sinkhorn_l2_stop});
  Plan plan = plan_from_matrix(problem, r.plan);
  plan.kind = eps <= 1e-10 ? "emd" : std::isinf(eps) ? "product" : "sinkhorn";
  plan.epsilon = eps;
  plan.mean_cost = mean;
  plan.iterations = r.iterations;
  plan.marginal_error = r.marginal_error;
  plan.converged = r.converged;
  plan.stagnated = r.stagnated;
  for (double v : plan.pi.values)
    if (v > 0) plan.entropy -= v * std::log(v);
  return plan;
}

// Q(w; Π) from z = G w.
double objective(const SwapProblem& problem, const Plan& plan, const Vec& z, const Vec& w) {
  const auto n = static_cast<double>(problem.n());
  return 0.5 * n * plan.cost(problem.y, z) + 0.5 * n * problem.lambda * squared_distance(w, problem.w_bar);
}

// ∇_w Q(w; Π) = n Gᵀ(c ⊙ z − Πᵀy) + nλ(w − w̄), from z = G w.
Vec exact_gradient(const SwapProblem& problem, const Plan& plan, const Vec& z, const Vec& w) {
  const int64_t n = problem.n();
  const auto nd = static_cast<double>(n);
  Vec r(n);
  for (int64_t j = 0; j < n; ++j) r[j] = nd * (plan.col[j] * z[j] - plan.targets[j]);
  Vec g = times_t(problem.columns, r);
  for (size_t i = 0; i < g.size(); ++i) g[i] += nd * problem.lambda * (w[i] - problem.w_bar[i]);
  return g;
}

// The code's direction Gᵀ Π (z − y) + λ(w − w̄).
Vec code_direction(const SwapProblem& problem, const Plan& plan, const Vec& z, const Vec& w) {
  Vec r(z.size());
  for (size_t j = 0; j < z.size(); ++j) r[j] = z[j] - problem.y[j];
  Vec g = times_t(problem.columns, plan.apply(r));
  for (size_t i = 0; i < g.size(); ++i) g[i] += problem.lambda * (w[i] - problem.w_bar[i]);
  return g;
}

// Q(u0 − τ u1; Π) = c0 + c1 τ + c2 τ² for a fixed plan, from z0 = G u0 and z1 = G u1
// (Σ_ij Π_ij (y_i − z_j)² = Σ r_i y_i² − 2 Σ t_j z_j + Σ c_j z_j², t = Πᵀy).
struct LineObjective {
  double c0 = 0, c1 = 0, c2 = 0;
  double at(double tau) const { return c0 + tau * (c1 + tau * c2); }
  double slope(double tau) const { return c1 + 2.0 * c2 * tau; }
};

LineObjective line_objective(const SwapProblem& problem, const Plan& plan, const Vec& u0, const Vec& z0, const Vec& u1,
                             const Vec& z1) {
  const auto n = static_cast<double>(problem.n());
  const double nl = n * problem.lambda;
  double tz1 = 0, cz0z1 = 0, cz1z1 = 0;
  for (size_t j = 0; j < z0.size(); ++j) {
    tz1 += plan.targets[j] * z1[j];
    cz0z1 += plan.col[j] * z0[j] * z1[j];
    cz1z1 += plan.col[j] * z1[j] * z1[j];
  }
  double e0u1 = 0, u1u1 = 0;
  for (size_t i = 0; i < u0.size(); ++i) {
    e0u1 += (u0[i] - problem.w_bar[i]) * u1[i];
    u1u1 += u1[i] * u1[i];
  }
  LineObjective q;
  q.c0 = objective(problem, plan, z0, u0);
  q.c1 = n * (tz1 - cz0z1) - nl * e0u1;
  q.c2 = 0.5 * n * cz1z1 + 0.5 * nl * u1u1;
  return q;
}

// The code's τ search on (0, τ_c): torch.optim.Adam(lr 0.01) from τ = 0.5 (clamped), at most 1000
// steps, stopping once the gradient taken was below 1e-16 or τ left (0, τ_c); returns τ clamped.
double adam_line_search(const LineObjective& q, double tau_c) {
  const double beta1 = 0.9, beta2 = 0.999, lr = 0.01, eps = 1e-8;
  double tau = std::clamp(0.5, 0.0, std::max(0.0, tau_c - 1e-16)), m = 0.0, v = 0.0;
  for (int t = 1; t <= 1000; ++t) {
    const double g = q.slope(tau);
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    const double m_hat = m / (1 - std::pow(beta1, t)), v_hat = v / (1 - std::pow(beta2, t));
    tau -= lr * m_hat / (std::sqrt(v_hat) + eps);
    if (std::abs(g) < 1e-16 || tau >= tau_c || tau <= 0) break;
  }
  return std::clamp(tau, 0.0, std::max(0.0, tau_c));
}

void record_plan(SwapStageLog& log, const Plan& plan) {
  log.plan = plan.kind;
  log.epsilon = plan.epsilon;
  log.mean_cost = plan.mean_cost;
  log.plan_entropy = plan.entropy;
  log.sinkhorn_iterations += plan.iterations;
  log.marginal_error = plan.marginal_error;
  log.converged = log.converged && plan.converged;
  log.stagnated_plans += plan.stagnated;
}

// Checks a stage's arguments and starts its result, named for the method the options select.
SwapStageResult start_stage(const char* where, const SwapProblem& problem, const Vec& w, int64_t k,
                            const SwapOptions& o) {
  check_weights(where, problem, w);
  SHEARS_CHECK(k >= 0 && k <= problem.p(), where, "k must be in [0, ", problem.p(), "], got ", k);
  SHEARS_CHECK(o.inner_iters >= 0 && o.resolve_iters >= 0 && o.power_iters >= 1, where,
               "inner_iters and resolve_iters must be >= 0 and power_iters >= 1");
  SHEARS_CHECK(!o.transport || o.epsilon >= 0, where, "epsilon must be >= 0, got ", o.epsilon);
  SwapStageResult result;
  result.log.method = o.transport ? "swap" : "lr";
  return result;
}

// Ends a stage: the objective at its weights, the kept count, the overlap with the magnitude support.
SwapStageResult finish_stage(SwapStageResult result, const SwapProblem& problem, const Plan& plan, const Vec& z, Vec w,
                             std::vector<uint8_t> support, const std::vector<uint8_t>& magnitude, int64_t k) {
  result.log.objective_after = objective(problem, plan, z, w);
  result.log.kept = k;
  result.log.magnitude_overlap = support_overlap(support, magnitude, k);
  result.w = std::move(w);
  result.support = std::move(support);
  return result;
}

// argmin of Q(·; Π) over the weights supported on `support` (the others 0): the ridge system
// (G_Sᵀ diag(n c) G_S + nλI) w_S = n G_Sᵀ Πᵀy + nλ w̄_S by conjugate gradients from w_S, on the
// gathered columns of G.
Vec resolve_on_support(const SwapProblem& problem, const Plan& plan, const std::vector<uint8_t>& support, const Vec& w,
                       int64_t iterations) {
  const int64_t n = problem.n(), p = problem.p();
  std::vector<int64_t> index;
  for (int64_t i = 0; i < p; ++i)
    if (support[i]) index.push_back(i);
  const auto s = static_cast<int64_t>(index.size());
  if (s == 0) return Vec(p, 0.0);
  Tensor GS = Tensor::empty({s, n});  // the support's columns of G
  for (int64_t j = 0; j < s; ++j)
    std::memcpy(GS.data() + j * n, problem.columns.data() + index[j] * n, sizeof(float) * n);
  const auto nd = static_cast<double>(n);
  const double nl = nd * problem.lambda;
  auto apply = [&](const Vec& v) {
    Vec z = times(GS, v);
    for (int64_t j = 0; j < n; ++j) z[j] *= nd * plan.col[j];
    Vec out = times_t(GS, z);
    for (int64_t j = 0; j < s; ++j) out[j] += nl * v[j];
    return out;
  };
  Vec rhs(n);
  for (int64_t j = 0; j < n; ++j) rhs[j] = nd * plan.targets[j];
  Vec b = times_t(GS, rhs), x(s);
  for (int64_t j = 0; j < s; ++j) {
    b[j] += nl * problem.w_bar[index[j]];
    x[j] = w[index[j]];
  }
  Vec r = apply(x);
  for (int64_t j = 0; j < s; ++j) r[j] = b[j] - r[j];
  Vec d = r;
  double rr = dot(r, r);
  const double stop = 1e-24 * dot(b, b);
  for (int64_t it = 0; it < iterations && rr > stop; ++it) {
    Vec ad = apply(d);
    const double dad = dot(d, ad);
    if (!(dad > 0)) break;
    const double alpha = rr / dad;
    for (int64_t j = 0; j < s; ++j) {
      x[j] += alpha * d[j];
      r[j] -= alpha * ad[j];
    }
    const double rr_next = dot(r, r);
    for (int64_t j = 0; j < s; ++j) d[j] = r[j] + rr_next / rr * d[j];
    rr = rr_next;
  }
  Vec out(p, 0.0);
  for (int64_t j = 0; j < s; ++j) out[index[j]] = x[j];
  return out;
}

}  // namespace

std::vector<double> mat_vec(const SwapProblem& problem, const std::vector<double>& x) {
  check_weights("mat_vec", problem, x);
  return times(problem.columns, x);
}

std::vector<double> mat_t_vec(const SwapProblem& problem, const std::vector<double>& u) {
  SHEARS_CHECK(static_cast<int64_t>(u.size()) == problem.n(), "mat_t_vec", "u has ", u.size(), " entries but G has ",
               problem.n(), " rows");
  return times_t(problem.columns, u);
}

SwapProblem swap_problem(const Tensor& G, std::vector<double> w_bar, double lambda) {
  SHEARS_CHECK(G.dim() == 2 && G.size(0) >= 1 && G.size(1) == static_cast<int64_t>(w_bar.size()), "swap",
               "G must be (n, p) with n >= 1 and p = ", w_bar.size(), " (the weights), got ", to_string(G.shape()));
  SHEARS_CHECK(lambda >= 0 && std::isfinite(lambda), "swap", "lambda must be finite and >= 0, got ", lambda);
  const int64_t n = G.size(0), p = G.size(1), tile = 64;
  SwapProblem problem{Tensor::empty({p, n}), std::move(w_bar), {}, lambda};
  parallel_for((p + tile - 1) / tile, 1, [&](int64_t b, int64_t e) {  // the transpose, tile by tile
    for (int64_t j0 = b * tile; j0 < std::min(p, e * tile); j0 += tile)
      for (int64_t i0 = 0; i0 < n; i0 += tile)
        for (int64_t j = j0; j < std::min(p, j0 + tile); ++j)
          for (int64_t i = i0; i < std::min(n, i0 + tile); ++i) problem.columns.data()[j * n + i] = G.data()[i * p + j];
  });
  problem.y = times(problem.columns, problem.w_bar);
  return problem;
}

ot::Matrix transport_cost_matrix(const SwapProblem& problem, const std::vector<double>& w) {
  check_weights("transport_cost_matrix", problem, w);
  Vec z = times(problem.columns, w);
  const int64_t n = problem.n();
  ot::Matrix m(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) m(i, j) = (problem.y[i] - z[j]) * (problem.y[i] - z[j]);
  return m;
}

double objective_lr(const SwapProblem& problem, const std::vector<double>& w) {
  check_weights("objective_lr", problem, w);
  return objective(problem, identity_plan(problem), times(problem.columns, w), w);
}

double objective_ewr(const SwapProblem& problem, const std::vector<double>& w, const ot::Matrix& plan) {
  check_weights("objective_ewr", problem, w);
  return objective(problem, plan_from_matrix(problem, plan), times(problem.columns, w), w);
}

std::vector<double> gradient_lr(const SwapProblem& problem, const std::vector<double>& w) {
  check_weights("gradient_lr", problem, w);
  return exact_gradient(problem, identity_plan(problem), times(problem.columns, w), w);
}

std::vector<double> search_direction(const SwapProblem& problem, const std::vector<double>& w, const ot::Matrix& plan,
                                     Direction direction) {
  check_weights("search_direction", problem, w);
  Plan p = plan_from_matrix(problem, plan);
  Vec z = times(problem.columns, w);
  return direction == Direction::exact ? exact_gradient(problem, p, z, w) : code_direction(problem, p, z, w);
}

double critical_step(const std::vector<double>& w, const std::vector<double>& d, int64_t k) {
  SHEARS_CHECK(w.size() == d.size(), "critical_step", "w has ", w.size(), " entries and d ", d.size());
  double hi = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < w.size(); ++i) {
    double r = w[i] / (d[i] + 1e-16);
    if (!std::isnan(r)) hi = std::max(hi, r);
  }
  hi = std::min(hi, 100.0);
  double lo = 0.0;
  if (!(hi > 0)) return 0.0;
  const std::vector<uint8_t> support = top_k_support(w, k);
  Vec x(w.size());
  for (int count = 0; hi - lo > 1e-16 && count < 50; ++count) {
    const double mid = 0.5 * (lo + hi);
    for (size_t i = 0; i < w.size(); ++i) x[i] = w[i] - mid * d[i];
    (top_k_support(x, k) == support ? lo : hi) = mid;
  }
  return lo;
}

double lipschitz_constant(const SwapProblem& problem, int64_t iterations, uint64_t seed) {
  SHEARS_CHECK(iterations >= 1, "lipschitz_constant", "iterations must be >= 1, got ", iterations);
  Generator gen(seed);
  Vec v(problem.p());
  for (double& x : v) x = gen.normal();
  double sigma2 = 0.0;
  for (int64_t it = 0; it < iterations; ++it) {
    const double length = norm(v);
    if (length == 0.0) break;
    for (double& x : v) x /= length;
    v = times_t(problem.columns, times(problem.columns, v));
    const double previous = sigma2;
    sigma2 = norm(v);  // ‖GᵀG v‖ for ‖v‖ = 1
    if (std::abs(sigma2 - previous) <= 1e-3 * sigma2) break;  // L only seeds a step-size search
  }
  return sigma2 + static_cast<double>(problem.n()) * problem.lambda;
}

SwapStageResult swap_stage(const SwapProblem& problem, const std::vector<double>& w_in, int64_t k,
                           const SwapOptions& o) {
  SwapStageResult result = start_stage("swap_stage", problem, w_in, k, o);
  SwapStageLog& log = result.log;
  if (k == problem.p() && !o.update_weights) {  // nothing to prune: the step cannot change the result
    log.plan = "skipped";
    log.kept = k;
    result.w = w_in;
    result.support.assign(k, 1);
    return result;
  }
  const std::vector<uint8_t> magnitude = top_k_support(w_in, k);
  std::optional<double> lipschitz;  // computed only when τ_c degenerates
  Vec w = w_in, z = times(problem.columns, w);
  Plan plan;
  std::vector<uint8_t> support;
  for (int64_t it = 0; it < std::max<int64_t>(o.inner_iters, 1); ++it) {
    plan = make_plan(problem, z, o);
    record_plan(log, plan);
    if (it == 0) log.objective_before = objective(problem, plan, z, w);
    // LR is the code's ot=false branch: the gradient of Q_LR whatever `direction` says.
    Vec d = o.transport && o.direction == Direction::code ? code_direction(problem, plan, z, w)
                                                          : exact_gradient(problem, plan, z, w);
    const double tau_c = critical_step(w, d, k);
    // (b) Adam on Q(a − τb), a = H_k(w), b = d on a's non-zeros.
    Vec a = hard_threshold(w, k), b(d.size());
    for (size_t i = 0; i < d.size(); ++i) b[i] = a[i] != 0.0 ? d[i] : 0.0;
    const double tau_m = adam_line_search(
        line_objective(problem, plan, a, times(problem.columns, a), b, times(problem.columns, b)), tau_c);
    double tau;
    log.fallback = !(tau_c > 0);
    if (log.fallback) {
      if (!lipschitz) lipschitz = lipschitz_constant(problem, o.power_iters);
      tau = 1.0 / *lipschitz;
    } else if (tau_m < tau_c) {
      tau = tau_m;
    } else {  // (c) grow τ by 1.05 while Q(w − τd) decreases
      LineObjective q = line_objective(problem, plan, w, z, d, times(problem.columns, d));
      tau = tau_c;
      for (int step = 0; step < 10000 && q.at(1.05 * tau) < q.at(tau); ++step) tau *= 1.05;
    }
    log.tau_c = tau_c;
    log.tau = tau;
    Vec next(w.size());
    for (size_t i = 0; i < w.size(); ++i) next[i] = w[i] - tau * d[i];
    std::vector<uint8_t> s = top_k_support(next, k);
    const bool settled = s == support;
    support = std::move(s);
    w = masked(o.update_weights ? next : w, support);
    z = times(problem.columns, w);
    log.inner_iterations = it + 1;
    if (settled) break;
  }
  return finish_stage(std::move(result), problem, plan, z, std::move(w), std::move(support), magnitude, k);
}

SwapStageResult swap_stage_exact(const SwapProblem& problem, const std::vector<double>& w_in, int64_t k,
                                 const SwapOptions& o) {
  SwapStageResult result = start_stage("swap_stage_exact", problem, w_in, k, o);
  SwapStageLog& log = result.log;
  const double lipschitz = lipschitz_constant(problem, o.power_iters);
  const std::vector<uint8_t> magnitude = top_k_support(w_in, k);
  std::vector<uint8_t> support = magnitude;
  Vec w = masked(w_in, support);
  if (o.transport && o.lr_start) {  // EWR from LR's solution, where G w is close to y again
    SwapOptions lr = o;
    lr.transport = false;
    SwapStageResult start = swap_stage_exact(problem, w_in, k, lr);
    w = std::move(start.w);
    support = std::move(start.support);
  }
  Vec z = times(problem.columns, w);
  Plan plan;
  for (int64_t it = 0;; ++it) {
    plan = make_plan(problem, z, o);  // the plan step: Π minimises the entropic cost at w
    record_plan(log, plan);
    if (it == 0) log.objective_before = objective(problem, plan, z, w);
    if (o.resolve_iters > 0) {
      w = resolve_on_support(problem, plan, support, w, o.resolve_iters);
      z = times(problem.columns, w);
    }
    if (it == o.inner_iters) break;
    // The weight step w ← H_k(w − τ∇Q) for the plan fixed: the best τ of the grid 2^j/L, which runs
    // until half of the support would be replaced or the step dwarfs every weight (at a re-solved
    // point ∇ vanishes on the support, so small steps change nothing and only long ones find swaps);
    // below 1/L by halving when the grid finds no descent (1/L is from a power-iteration estimate).
    // With the re-solve on, each candidate support is judged after 8 CG steps on it (a thresholded
    // point alone nearly always loses to the re-solved current one: hard thresholding pursuit).
    const Vec grad = exact_gradient(problem, plan, z, w);
    struct Trial {
      double tau, q;
      Vec x, z;
      std::vector<uint8_t> support;
    };
    auto trial = [&](double tau) {
      Vec x(w.size());
      for (size_t i = 0; i < w.size(); ++i) x[i] = w[i] - tau * grad[i];
      Trial t{tau, 0.0, {}, {}, top_k_support(x, k)};
      t.x = masked(x, t.support);
      if (o.resolve_iters > 0 && t.support != support)  // judge a new support by its (rough) optimum
        t.x = resolve_on_support(problem, plan, t.support, t.x, std::min<int64_t>(o.resolve_iters, 8));
      t.z = times(problem.columns, t.x);  // x is k-sparse: O(n·k)
      t.q = objective(problem, plan, t.z, t.x);
      return t;
    };
    double largest_w = 0.0, largest_grad = 0.0;
    for (size_t i = 0; i < w.size(); ++i) {
      largest_w = std::max(largest_w, std::abs(w[i]));
      largest_grad = std::max(largest_grad, std::abs(grad[i]));
    }
    Trial best{0.0, objective(problem, plan, z, w), w, z, support};
    if (largest_grad == 0.0) break;  // a stationary point of Q on every support
    for (double tau = 1.0 / lipschitz; tau * largest_grad <= 16.0 * largest_w; tau *= 2.0) {
      Trial t = trial(tau);
      int64_t replaced = 0;
      for (size_t i = 0; i < w.size(); ++i) replaced += t.support[i] && !support[i];
      if (t.q < best.q) best = std::move(t);
      if (2 * replaced > k) break;
    }
    // (A re-solved w is optimal on its support: steps shorter than 1/L cannot help it.)
    const double shortest = std::ldexp(1.0 / lipschitz, -30);
    for (double tau = 0.5 / lipschitz; o.resolve_iters == 0 && best.tau == 0.0 && tau >= shortest; tau *= 0.5) {
      Trial t = trial(tau);
      if (t.q < best.q) best = std::move(t);
    }
    if (best.tau == 0.0) break;  // no descent: w is a fixed point of the step
    log.tau = best.tau;
    log.inner_iterations = it + 1;
    const bool settled = best.support == support;
    if (settled && o.resolve_iters > 0) break;  // the re-solve already gave the optimum on this support
    const double change = std::sqrt(squared_distance(best.x, w));
    w = std::move(best.x);
    z = std::move(best.z);
    support = std::move(best.support);
    if (settled && change <= 1e-6 * norm(w)) break;
  }
  return finish_stage(std::move(result), problem, plan, z, std::move(w), std::move(support), magnitude, k);
}

}  // namespace shears::prune
