// Optimal transport between two discrete measures (docs/algorithms/intra-fusion.md#optimal-transport-solvers),
// shared by Intra-Fusion (exact plans) and SWAP (entropic plans and their ε → 0 limit).
//
// Both solvers take source masses a (length N), target masses b (length K) and a cost matrix M
// (N×K, row-major) and return a dense float64 plan Π (N×K) with Π1 = a and Πᵀ1 = b.
//
// emd: the exact linear program min ⟨Π, M⟩ over those plans, by LEMON's network simplex (Debian
// liblemon-dev; header-only for this use) on the bipartite graph source i → target j. Masses are
// scaled to integers first, so that the flow problem is balanced exactly: each measure is
// normalised, multiplied by S = N·K·2^k (the largest such value ≤ 2^50) and rounded by largest
// remainders (ties to the lower index). Uniform masses 1/N, 1/K are therefore represented
// exactly; others within 1/S of their normalised value. The plan is scaled back to a's total.
// The pivot rule is LEMON's block search, which is deterministic for a given input, so the choice
// among the many optimal plans of a degenerate problem is reproducible.
// Departure from the reference (POT ot.emd): no iteration cap; b must have a's total to 1e-6
// relative and is then rescaled to it (POT rescales silently).
//
// sinkhorn: min ⟨Π, M⟩ + ε Σ Π_ij (log Π_ij − 1) by Sinkhorn's scaling iterations on the kernel
// exp((f_i + g_j − M_ij)/ε), whose potentials f, g absorb the scalings whenever these leave
// [1e-30, 1e30] (a log-domain sweep then restarts them: the stabilised form; the kernel in
// float32, scalings and sums in float64): two
// matrix-vector products an iteration, and finite for small ε. The row-marginal error
// ‖Π1 − a‖₁ is compared with the tolerance every iteration. By default the scalings are
// over-relaxed (u ← u^{1−ω}(a/Kv)^ω, ω adapted to the observed rate of convergence; same fixed
// point, often several times fewer iterations where plain Sinkhorn is slow) and plain iterations
// finish the run; `overrelaxation = false` runs the reference's plain iterations. ε is in absolute cost units. ε ≤
// 1e-10 gives the exact plan (emd) and ε = +∞ the product plan a bᵀ, as the reference does. Departure from SWAP's
// reference (POT's plain sinkhorn): the stabilisation, which agrees whenever both converge. A run that hits the
// iteration cap reports converged = false (the caller decides whether to warn; nothing here prints).
// Iterations also stop when the error has stalled above the tolerance (stagnated = true): the
// kernel is float32, so its rounding puts a floor under the error that a tight tolerance may lie
// below; over-relaxed steps that stall hand over to plain ones first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace shears::prune::ot {

// A dense row-major float64 matrix (costs and plans).
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;

  Matrix() = default;
  Matrix(int64_t rows_, int64_t cols_, double fill = 0.0);
  double& operator()(int64_t i, int64_t j) { return values[static_cast<size_t>(i * cols + j)]; }
  double operator()(int64_t i, int64_t j) const { return values[static_cast<size_t>(i * cols + j)]; }
  std::vector<double> row_sums() const;
  std::vector<double> col_sums() const;
};

// ⟨Π, M⟩.
double transport_cost(const Matrix& plan, const Matrix& cost);

// The exact optimal plan. Throws shears::Error for mismatched sizes, negative or non-finite
// masses or costs, an empty measure, or totals that differ.
Matrix emd(const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost);

struct SinkhornOptions {
  double epsilon = 1e-2;
  int64_t max_iterations = 5000;
  double tolerance = 1e-9;  // on ‖Π1 − a‖₁ (‖Π1 − a‖₂ with l2_stop)
  bool overrelaxation = true;
  bool l2_stop = false;  // POT's test (SWAP's official code): the L2 norm, ~√n times below L1 for spread errors
};

struct SinkhornResult {
  Matrix plan;
  int64_t iterations = 0;
  double marginal_error = 0.0;  // ‖Π1 − a‖ of the returned plan, in the stopping test's norm
  bool converged = true;
  // Stopped before the tolerance because the error no longer fell: 100 plain iterations without a
  // new minimum (the float32 kernel's precision); marginal_error says where it stood.
  bool stagnated = false;
};

// The entropic plan; masses must be positive (a zero mass has no finite dual potential).
SinkhornResult sinkhorn(const std::vector<double>& a, const std::vector<double>& b, const Matrix& cost,
                        const SinkhornOptions& options = {});

}  // namespace shears::prune::ot
