// SWAP — sparse entropic Wasserstein regression pruning (You & Cheng, ICLR 2024), with its LR
// baseline (CHITA's formulation: the same regression with the identity plan) and the gradual driver
// that WoodFisher and magnitude pruning share (prune/algorithms/woodfisher.hpp). Documented in
// docs/algorithms/swap.md: objectives and symbols (#notation-and-objectives), identities
// (#identities), G (#per-sample-gradients), the two solvers (#the-code-solver,
// #the-principled-solver), the driver (#gradual-protocol), noise (#gradient-noise), departures
// (#the-official-code-and-shears) and tested properties (#properties-the-tests-check); the plans in
// docs/algorithms/intra-fusion.md#optimal-transport-solvers (prune/ot).
//
// The regression of one stage: G (n × p, float32, one per-sample gradient per row), the dense
// weights w̄ recorded before pruning, targets y = G w̄ and the current weights w (float64):
//   Q_LR(w)     = ½‖y − G w‖² + (nλ/2)‖w − w̄‖²
//   Q_EWR(w; Π) = (n/2) Σ_ij Π_ij (y_i − (G w)_j)² + (nλ/2)‖w − w̄‖²,  Π the entropic plan between
//                 the points y and G w (uniform masses 1/n, cost M_ij = (y_i − (Gw)_j)², ε absolute
//                 unless relative_epsilon, which scales it by mean(M) at every plan step).
// Q_EWR(·; I/n) = Q_LR. G is only ever used through mat-vecs (never GᵀG), in float64 accumulation,
// split across the thread pool so that results do not depend on the thread count.
//
// Two stage solvers, both ending in exactly k kept entries (H_k below):
// - code (swap_stage): the official code's single IHT step — direction d (`code`:
//   Gᵀ Π (Gw − y) + λ(w − w̄); `exact`: the gradient of Q_EWR; LR: the gradient of Q_LR), τ_c by
//   bisection on the top-k support, a 1000-step Adam line search on τ in (0, τ_c), the 1.05 growth
//   beyond τ_c, w⁺ = H_k(w − τ d). The new mask is the support of w⁺; the weights keep their old
//   values on it (update_weights = false, as the code) or take w⁺'s. inner_iters repeats the step
//   (new plan each time) until the support stops changing.
// - principled (swap_stage_exact): IHT on the stated objective — started from the magnitude
//   solution H_k(w), each inner iteration computes the plan at w (the exact minimisation over Π),
//   re-solves the weights on the support for that plan (the ridge problem restricted to the
//   support, by conjugate gradients on the gathered columns of G; resolve_iters = 0 turns this
//   off, giving plain IHT), then takes the exact gradient step w ← H_k(w − τ∇Q) with the best τ of
//   the grid 2^j/L (L = σ_max(G)² + nλ by power iteration; see swap_stage_exact), and stops when
//   the support is unchanged or no step of the grid lowers Q.
//   Plan step and weight step each lower (n/2)(⟨Π, M(w)⟩ + ε Σ Π log Π) + (nλ/2)‖w − w̄‖², so the
//   alternation is monotone in that objective. inner_iters = 0 gives the ridge re-solve on the
//   magnitude support alone. EWR starts from the LR solution of the same stage (lr_start): the
//   objective is invariant to permuting the samples, and at high sparsity G·H_k(w) is so far from
//   y that the plan there pairs targets with predictions by rank alone, discarding which sample is
//   which (measured on MLPNet/Fashion-MNIST at 90%: 76.1% from H_k(w̄), below magnitude's 77.1%;
//   LR alone 84.1%). From LR's solution G w ≈ y, and the plan smooths each target over samples
//   with similar projected gradients — the "neighbourhood interpolation" of the paper.
//
// H_k keeps the k entries of largest |x|; among equal |x| the lower flat index wins
// (docs/algorithms/README.md#tie-breaking), so exactly k survive. Gradual pruning prunes floor(s·p)
// entries at sparsity s, as masks_from_scores does.
//
// Departures from the official code (github.com/youlei202/CBS @ce54d7dd,
// pruners/optimal_transport_pruner.py):
// - The mask is the support of H_k (exactly k ones); the code's H_k keeps ties (|x| ≥ k-th) and its
//   mask is 1[w⁺ ≠ 0]. With update_weights = false a kept entry may still hold 0 (an entry that
//   re-entered the support keeps its old value 0), as in the code.
// - For a fixed plan Q along a line is a quadratic in τ; its three coefficients are computed once
//   (two mat-vecs), so the Adam search and the 1.05 growth cost O(1) per step instead of a pass
//   over G (the same iterates up to rounding; the growth stops after 10000 steps). G is computed
//   once per stage (the code computes it twice on the same samples).
// - When max_i w_i/(d_i + 1e-16) ≤ 0 the code's τ_c is 0 and its step degenerates to H_k(w); here
//   the step falls back to τ = 1/L (docs/algorithms/swap.md#the-code-solver) and the stage log says so.
// - On the CPU the code's line search masks its direction in place (`b *= mask` aliases
//   delta_Qw), so its final step moves only the entries of supp H_k(w); on a GPU it does not. We
//   follow the GPU behaviour (the full direction).
// - The official noise model draws from torch's generator; ours from the seeded shears Generator.
// - A code stage that keeps every entry (the cubic schedule's first) is skipped when the weights
//   are not written: the code computes its plan (up to 5000 Sinkhorn iterations) to keep them all.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/batch.hpp"
#include "core/random.hpp"
#include "nn/module.hpp"
#include "prune/algorithms/woodfisher.hpp"
#include "prune/masks.hpp"
#include "prune/ot.hpp"
#include "prune/support.hpp"

namespace shears::prune {

// A float64 vector of the regressions (n targets, or p weights).
using Vec = std::vector<double>;

// One stage's regression data (see the header comment). G is kept by columns (its transpose), so
// that G x costs O(n·nnz(x)): the solvers mostly multiply k-sparse vectors.
struct SwapProblem {
  Tensor columns;             // Gᵀ, (p, n) float32
  std::vector<double> w_bar;  // p
  std::vector<double> y;      // G w̄
  double lambda = 0.01;
  int64_t n() const { return columns.size(1); }
  int64_t p() const { return columns.size(0); }
};
// G: (n, p), one per-sample gradient per row (per_sample_gradients); copied.
SwapProblem swap_problem(const Tensor& G, std::vector<double> w_bar, double lambda);

// G x (length n) and Gᵀ u (length p), accumulated in float64.
std::vector<double> mat_vec(const SwapProblem& problem, const std::vector<double>& x);
std::vector<double> mat_t_vec(const SwapProblem& problem, const std::vector<double>& u);

// M_ij = (y_i − (G w)_j)², n × n.
ot::Matrix transport_cost_matrix(const SwapProblem& problem, const std::vector<double>& w);

double objective_lr(const SwapProblem& problem, const std::vector<double>& w);
double objective_ewr(const SwapProblem& problem, const std::vector<double>& w, const ot::Matrix& plan);

// ∇Q_LR = Gᵀ(Gw − y) + nλ(w − w̄).
std::vector<double> gradient_lr(const SwapProblem& problem, const std::vector<double>& w);

enum class Direction { code, exact };
// code: Gᵀ Π (Gw − y) + λ(w − w̄); exact: ∇_w Q_EWR(w; Π) for Π fixed, n Gᵀ(c ⊙ Gw − Πᵀy) + nλ(w − w̄)
// with c the column sums of Π (= Gᵀ(Gw − nΠᵀy) + nλ(w − w̄) for uniform marginals).
std::vector<double> search_direction(const SwapProblem& problem, const std::vector<double>& w, const ot::Matrix& plan,
                                     Direction direction);

// τ_c of the code solver: bisection (≤ 50 halvings) on [0, min(max_i w_i/(d_i + 1e-16), 100)] for the largest
// τ with top_k_support(w − τd) = top_k_support(w); 0 when that bound is ≤ 0.
double critical_step(const std::vector<double>& w, const std::vector<double>& d, int64_t k);

// σ_max(G)² + nλ by power iteration on GᵀG (a lower bound that converges from below).
double lipschitz_constant(const SwapProblem& problem, int64_t iterations = 20, uint64_t seed = 0);

// The noise model (docs/algorithms/swap.md#gradient-noise): in every row g of G, floor(prop·p)
// coordinates drawn uniformly without replacement get N(0, (scale·std(g))²) added, std the unbiased
// standard deviation of the row. Seeded by `gen`.
void add_gradient_noise(Tensor& G, double scale, double prop, Generator& gen);

// The cubic schedule for stage t = 1..T: s_t = s_T + (s_0 − s_T)(1 − (t−1)/(T−1))³ (s_T if T = 1).
double cubic_sparsity(int64_t t, int64_t stages, double target, double initial = 0.0);

enum class Solver { principled, code };

struct SwapOptions {
  bool transport = true;          // false: LR (Π = I/n)
  double epsilon = 1.0;           // ≤ 1e-10: exact plan (emd); +∞: product plan
  bool relative_epsilon = false;  // ε × mean(M) at each plan step
  int64_t sinkhorn_iterations = 5000;
  double sinkhorn_tolerance = 1e-9;
  bool sinkhorn_overrelaxation = true;  // false: the reference's plain iterations
  bool sinkhorn_l2_stop = false;        // the reference's (POT's) stopping test, ot::SinkhornOptions::l2_stop
  Solver solver = Solver::principled;
  Direction direction = Direction::code;  // code solver with transport (LR always uses its gradient)
  bool update_weights = false;            // code solver: write w⁺'s values (principled: always)
  int64_t inner_iters = 1;                // code: IHT steps; principled: support updates
  int64_t resolve_iters = 30;             // principled: CG steps of the re-solve on the support
  bool lr_start = true;                   // principled EWR: start from LR's solution, not H_k(w)
  int64_t power_iters = 8;                // for L (stops early at 1e-3 relative change)
};

// What one stage did, for the per-stage trace.
struct SwapStageLog {
  int64_t stage = 0;
  double sparsity = 0;
  int64_t kept = 0;
  std::string method, plan;  // plan: sinkhorn, emd, product or identity
  double epsilon = 0;        // absolute ε of the last plan
  double mean_cost = 0;      // mean(M) of the last plan's cost
  double plan_entropy = 0;   // −Σ Π log Π: log n for I/n or a permutation, 2 log n for the product plan
  int64_t sinkhorn_iterations = 0;  // summed over the stage's plans
  double marginal_error = 0;        // of the last plan
  bool converged = true;            // every plan met the tolerance
  int64_t stagnated_plans = 0;      // plans whose Sinkhorn stopped on a stalled error (ot::SinkhornResult)
  double objective_before = 0;  // Q at the start (code: w; principled: H_k(w), EWR LR's result), first plan
  double objective_after = 0;   // Q at the stage's result, last plan
  double tau_c = 0, tau = 0;    // the last step's (code solver: τ_c and τ; principled: τ)
  bool fallback = false;        // τ_c ≤ 0: τ = 1/L was used
  int64_t inner_iterations = 0;
  double magnitude_overlap = 1;  // |kept ∩ top-k of |w| at the stage's start| / k
  int64_t regrown = 0;           // kept entries that were pruned before the stage
  double gradient_seconds = 0, solve_seconds = 0;
};

struct SwapStageResult {
  std::vector<double> w;         // the new weights, zero off the support
  std::vector<uint8_t> support;  // exactly k ones
  SwapStageLog log;
};

SwapStageResult swap_stage(const SwapProblem& problem, const std::vector<double>& w, int64_t k,
                           const SwapOptions& options);
SwapStageResult swap_stage_exact(const SwapProblem& problem, const std::vector<double>& w, int64_t k,
                                 const SwapOptions& options);

// The gradual driver (docs/algorithms/swap.md#gradual-protocol) for the Fisher-type methods and its
// one-shot case (stages = 1).
enum class StageMethod { swap, lr, woodfisher, magnitude };

struct SwapPruneOptions {
  StageMethod method = StageMethod::swap;
  SwapOptions swap;  // swap and lr
  WoodFisherOptions woodfisher;
  double lambda = 0.01;
  int64_t stages = 1;
  double initial_sparsity = 0.0;
  double noise_scale = 0.0, noise_prop = 0.0;  // add_gradient_noise; scale 0: no noise
  int64_t gradient_block = 32;                // samples per forward/backward for G
  uint64_t seed = 0;                          // the noise
};

// Prunes the named parameters of `model` globally to target.sparsity in `stages` stages of the
// cubic schedule. Each stage takes the next batch of `samples` (its batch size is n: one fresh
// seeded batch per stage), computes G at the current weights in eval mode with the masks
// temporarily all ones (so pruned entries get gradients too), adds the noise, runs the
// method's stage against w̄ (the weights at the call) and attaches the masks (apply_masks) with the
// stage's weights. `between_stages(t)` runs after every stage but the last (fine-tuning with the
// masks fixed in the gradual protocol); it may be empty. Throws unless the target is global with
// no per-layer cap. Returns one log per stage.
std::vector<SwapStageLog> swap_prune(nn::Module& model, const std::vector<std::string>& names,
                                     const SparsityTarget& target, const BatchSource& samples,
                                     const SwapPruneOptions& options,
                                     const std::function<void(int64_t)>& between_stages = {});

}  // namespace shears::prune
