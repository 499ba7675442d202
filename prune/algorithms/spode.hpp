// SpODE / PSO — pruning by following the sparsity-indexed ODE of optimal masks (Mo, Shi & Pan,
// ICML 2023). Documented in docs/algorithms/spode.md: F and the meaning of r (#the-one-step-evolution),
// the official code's G, polariser and schedules (#soft-density, #polariser, #step-size-schedules), the
// one-shot algorithm (#algorithm), departures (#the-official-code-and-shears) and tested properties
// (#properties-the-tests-check); BN re-estimation in docs/algorithms/baselines.md#bn-recalibration
// (prune/bn_recalibrate.hpp).
//
// A post-hoc solver on a trained model. The weights θ of the named parameters stay frozen; a soft
// mask m (one value per weight, or per input channel when `structured`) starts at 1 and moves by
// explicit Euler steps m ← m + dt_i·F(m) that lower the soft density G(m) by dt_i to first order
// while raising the loss least, the loss being evaluated at the polarised mask P(m). The final
// scores |m|·|θ| (structured: |m_c|·Σ_{slice c}|θ|) are binarised to exactly the target.
//
// Layout: the masks of all named tensors live in one flat float64 vector (SoftMask), tensor after
// tensor; entry i covers weights(i) weights of θ (1 unstructured; C_out·kH·kW for an input channel).
// With these weights one formula serves both variants: l2 G(m) = √(Σ n_i m_i² + 1e-12) / √d,
// l1 G(m) = Σ n_i |m_i| / d, d = Σ n_i (the official code's structured G has exactly this form).
//
// How the mask meets autograd: the polariser of the scripts (`ohh`) is binary, and its gradient is
// straight-through, ∂E/∂m_i := Σ_{j covered by i} (∂E/∂w_j)·θ_j at w = θ ⊙ P(m). So no mask
// needs to carry gradients: for each step the named parameters are temporarily replaced (via
// set_parameter) by fresh leaves w = θ ⊙ P(m), one forward/backward gives ∂E/∂w, and the chain rule
// above is applied by hand. Every other parameter has requires_grad switched off meanwhile (no
// gradient is accumulated anywhere in the model); θ is put back bit-identical afterwards. A mask
// already attached to a named parameter stays in the forward; θ is read as parameter ⊙ mask.
//
// Departures from the official code (github.com/mzf666/sparsity-indexed-ode @573942d6):
// - F in closed form with its degenerate case taken literally: when gᵀe is ‖g‖‖e‖ up to a
//   relative 1e-12 (e ∥ g, or e = 0) F = g/‖g‖²; otherwise the exact formula, without the code's
//   absolute 1e-12 guards (which inflate x instead of handling e ∥ g). Reductions in float64.
// - Ties in the polariser and the final top-k follow masks_from_scores (exactly floor(s·d) pruned,
//   earlier entry pruned first among equal scores); the code prunes every score ≤ τ.
// - Only the scripts' polariser (`ohh`), radius schedule (`fix`) and score momentum (0) are
//   implemented; `hess` step schedule (main.py's default) and `lin` are offered besides `exp`.
// - Linear biases are masked only if the scope names them (the code always masks them);
//   structured masks need tensors of rank ≥ 2 (input channel = dim 1).
// - BN after pruning: the BN running statistics changed by the ODE's train-mode forwards are
//   restored, then re-estimated by recalibrate_batch_norm (cumulative average over bn_batches
//   fresh batches) instead of the reference's reset plus one momentum-0.1 forward.
// - Structured: the target is a parameter sparsity s_p; channels are ranked per layer to the
//   channel density √(1 − s_p), and the schedule ends at that channel density.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/batch.hpp"
#include "nn/module.hpp"
#include "prune/masks.hpp"

namespace shears::prune {

enum class SoftSparsity { l2, l1 };         // G (--sparsity_option)
enum class StepSchedule { exp, lin, hess };  // dt_i (--schedule): scripts use exp, main.py's default hess

// The soft masks of the named tensors, flattened (see the header comment).
struct SoftMask {
  std::vector<std::string> names;
  std::vector<Shape> parameter_shapes;
  std::vector<int64_t> channels;  // mask entries per tensor: numel (unstructured) or shape[1]
  std::vector<int64_t> offsets;   // first entry of each tensor; offsets.back() = size()
  std::vector<double> values;     // m
  std::vector<double> weights;    // n_i: weights of θ covered by entry i
  std::vector<double> magnitudes; // a_i = Σ |θ_j| over the weights covered by entry i
  bool structured = false;
  int64_t size() const { return static_cast<int64_t>(values.size()); }
  double numel() const;  // d = Σ n_i
};

// m = 1 over the named parameters of `model` (θ read as parameter ⊙ attached mask).
SoftMask make_soft_mask(const nn::Module& model, const std::vector<std::string>& names, bool structured);

// G(m) ∈ [0, 1] for m ∈ [0, 1]^d, G(1) = 1 (soft density; the soft sparsity is 1 − G), and ∇G.
double soft_density(const SoftMask& mask, SoftSparsity measure);
std::vector<double> soft_density_gradient(const SoftMask& mask, SoftSparsity measure);

// The `ohh` polariser P(m): with Ĝ = G(m), prune floor((1 − Ĝ)·count) entries of lowest score
// |m_i|·a_i (over all entries when `distribution` is global, per tensor otherwise) and set the
// others to 1; returns m itself when no more than one entry would be pruned.
std::vector<double> polarise(const SoftMask& mask, SoftSparsity measure, Distribution distribution);

// The one-step evolution F for g = −∇G, e = −∇E_ε and radius ratio r > 1: gᵀF = 1,
// ‖F‖ = r/‖g‖, and F maximises eᵀδ among such δ; F = g/‖g‖² in the degenerate case e ∥ g.
std::vector<double> spode_direction(const std::vector<double>& g, const std::vector<double>& e, double r);

// dt_i for step i of n ending at density `end` (exp: D(u) = end^u, dt_i = D(i/n) − D((i+1)/n);
// lin: (1 − end)/n; hess: (density − end) / ((n − i)·‖∇E‖ + 1e-12) with the current G and ‖∇E‖).
double step_size(StepSchedule schedule, int64_t i, int64_t n, double end, double density, double loss_grad_norm);

struct SpodeOptions {
  int64_t steps = 100;  // N
  double r = 1.1;       // step radius / smallest feasible radius, > 1 (rt_schedule `fix`)
  StepSchedule schedule = StepSchedule::exp;
  SoftSparsity measure = SoftSparsity::l2;
  bool structured = false;  // input-channel masks (mask_dim = 1), ranked per layer
  int64_t bn_batches = 1;   // fresh batches for recalibrate_batch_norm after pruning; 0: none
};

// One ODE step: the loss at P(m_i), the soft sparsity 1 − G(m_{i+1}) after the step, the weighted
// fraction of zeros of P(m_i), the entries whose soft mask value rose, and the entries regrown by
// the polariser (0 in P(m_{i−1}), non-zero in P(m_i)).
struct SpodeStep {
  int64_t step = 0;
  double dt = 0, loss = 0, soft_sparsity = 0, polarised_sparsity = 0;
  int64_t increased = 0, regrown = 0;
};

struct SpodeResult {
  NamedTensors masks;  // binary, parameter-shaped, attached to the model
  std::vector<SpodeStep> trace;
};

// Runs the ODE in train mode on batches drawn from `next_batch` (one fresh batch
// per step), binarises to exactly the target (unstructured: prune_count(s, d) entries, global or
// per layer as the target says; structured: see above), attaches the masks with apply_masks, and
// re-estimates BatchNorm statistics. Throws on an invalid target or options.
SpodeResult spode_prune(nn::Module& model, const std::vector<std::string>& names, const SparsityTarget& target,
                        const BatchSource& next_batch, const SpodeOptions& options = {});

}  // namespace shears::prune
