// SFW-pruning (Lu et al., ICLR 2022, "Learning Pruning-Friendly Networks via Frank-Wolfe"):
// stochastic Frank-Wolfe training over a K-sparse polytope per tensor, after which the dense
// model is magnitude-pruned to any sparsity without retraining. Implements docs/algorithms/sfw.md:
//   #constraint-sets-and-the-lmo  constraint sets and their closed-form linear minimisation oracles (LMO)
//   #sizing-the-constraints       the K rule, the radius rule (modes initialization | radius | diameter), feasibility
//   #the-optimizer-step           the optimizer step (EMA momentum, lr rescaling by gradient | diameter | none, clamp)
//   #learning-rate-schemes        the learning-rate schemes keep | decrease_3 | decrease_3_180 | dynamic_change
//   #sfw-init                     SFW-Init (learned per-tensor scales, GradInit adapted to SFW)
// Pruning after training (#pruning-after-sfw-training) is global magnitude pruning: prune/masks.hpp with |θ| scores.
//
// Departures from the official code (VITA-Group/SFW-Once-for-All-Pruning @ 84ec0780), on purpose:
// - Constraints are bound to parameters by name, not by position in a list (the reference
//   mis-aligns them when a parameter has no gradient, and in SFW-Init by module order).
// - ν (the "average initialisation norm") is keyed by parameter, not by tensor shape, and is the
//   norm of the tensor handed to make_constraints (call it on the freshly initialised model): one
//   draw of the model's own initialiser instead of the mean of 100 PyTorch reset_parameters()
//   draws. The norm of n i.i.d. entries concentrates (relative spread O(1/√n)); BN γ (ones) gets
//   √C where the reference's shape keying gives it β's 1.0; zero tensors (BN β) get 1 as there.
//   A resumed run rebuilds the same model from the same seed, so its constraints are identical.
// - Top-K ties are broken deterministically (lower flat index wins), so the LMO is a function.
// - The conv/linear-only scope (tensors with ≥ 2 dimensions) is an addition: tensors outside the
//   scope are unconstrained and take a plain gradient step (same EMA momentum buffer) at their own
//   lr (SfwOptions::unconstrained_lr), which schedules scale like the constrained group's.
// - The dynamic_change scheme compares epoch-mean losses (the paper) unless
//   reference_last_batch_loss is set (the code records the last mini-batch's loss).
// - SFW-Init needs the gradient of a loss that contains a gradient; shears' autograd has no double
//   backward, so it uses a first-order approximation (docs/algorithms/sfw.md#sfw-init: g, v and α
//   held constant, so ∂L1/∂θ = (1 − α)·∂L1/∂θ′). The released code's defects are not reproduced
//   (docs/algorithms/sfw.md#the-official-code-and-shears).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.hpp"
#include "nn/module.hpp"
#include "optim/optimizer.hpp"

namespace shears::prune {

// A convex set C ⊂ R^n for one parameter tensor. All sizes are the tensor's numel.
class Constraint {
 public:
  virtual ~Constraint() = default;
  // argmin_{v ∈ C} ⟨d, v⟩, a tensor of d's shape.
  virtual Tensor lmo(const Tensor& d) const = 0;
  // A feasible point: x itself when x ∈ C, else x rescaled into C (parallel to x).
  virtual Tensor shift_inside(const Tensor& x) const = 0;
  // Whether x ∈ C up to a relative tolerance on the defining norms.
  virtual bool contains(const Tensor& x, double rel_tol = 1e-5) const = 0;
  virtual double radius() const = 0;    // the vertex magnitude τ (ℓp radius for balls)
  virtual double diameter() const = 0;  // the L2 diameter
  virtual int64_t size() const = 0;     // n
};

// conv{ v : ‖v‖₀ = K, v_i ∈ {−τ, 0, τ} } = { x : ‖x‖∞ ≤ τ, ‖x‖₁ ≤ Kτ }, with D = 2τ√K.
// LMO: v_i = −τ·sign(d_i) on the K largest |d_i| (ties: lower index first), 0 elsewhere; a
// selected d_i = 0 gives v_i = 0 (as the reference's torch.sign), so v is a vertex exactly when
// d has at least K non-zeros, and a minimiser of ⟨d, v⟩ in every case.
class KSparsePolytope : public Constraint {
 public:
  KSparsePolytope(int64_t n, int64_t k, double radius);
  static KSparsePolytope from_diameter(int64_t n, int64_t k, double diameter);
  Tensor lmo(const Tensor& d) const override;
  Tensor shift_inside(const Tensor& x) const override;
  bool contains(const Tensor& x, double rel_tol = 1e-5) const override;
  double radius() const override { return tau_; }
  double diameter() const override;
  int64_t size() const override { return n_; }
  int64_t k() const { return k_; }

 private:
  int64_t n_, k_;
  double tau_;
};

// { x : ‖x‖_p ≤ r } for p = 1, 2 or ∞ (for ablations). L2 diameter: 2r for p = 1, 2 and
// 2r√n for p = ∞, so from a diameter D the radius is D/2 (p = 1, 2) or D/(2√n) (p = ∞), the
// reference's convention. LMO: p = 1 −r·sign(d_i) at the first largest |d_i|; p = 2 −r·d/‖d‖;
// p = ∞ −r·sign(d) (sign(0) taken as +1, as the reference's masked_fill). Zero d: v = 0 (p = 1, 2).
class LpBall : public Constraint {
 public:
  enum class Norm { l1, l2, linf };
  LpBall(int64_t n, Norm p, double radius);
  static LpBall from_diameter(int64_t n, Norm p, double diameter);
  Tensor lmo(const Tensor& d) const override;
  Tensor shift_inside(const Tensor& x) const override;
  bool contains(const Tensor& x, double rel_tol = 1e-5) const override;
  double radius() const override { return r_; }
  double diameter() const override;
  int64_t size() const override { return n_; }

 private:
  double norm(const Tensor& x) const;
  int64_t n_;
  Norm p_;
  double r_;
};

// Frank-Wolfe gap ⟨g, x − LMO(g)⟩ ≥ 0 for x ∈ C: an upper bound on f(x) − min_C f for convex f
// with gradient g at x.
double frank_wolfe_gap(const Constraint& c, const Tensor& grad, const Tensor& x);

// Constraint sets keyed by parameter name; a parameter without an entry is unconstrained.
using Constraints = std::map<std::string, std::shared_ptr<const Constraint>>;

enum class ConstraintKind { k_sparse, l1, l2, linf };
enum class RadiusMode { initialization, radius, diameter };
enum class ConstraintScope { all_params, conv_linear_weights };

struct ConstraintOptions {
  ConstraintKind kind = ConstraintKind::k_sparse;
  // all_params: every parameter, biases and BN γ/β included (the reference, and the default so
  // that runs reproduce it); conv_linear_weights: only tensors with ≥ 2 dimensions.
  ConstraintScope scope = ConstraintScope::all_params;
  int64_t k_abs = 10;    // --k_sparseness ("the number of classes")
  double k_frac = 0.05;  // --k_frac: K is a fraction (a density) of each tensor's entries
  RadiusMode mode = RadiusMode::initialization;
  // initialization: D_l = 2·tau·ν_l (the reference's --tau 15); radius: τ_l = tau; diameter: D_l = tau.
  double tau = 15.0;
};

// K_l = min(max(k_abs, floor(k_frac·n)), n); throws unless n ≥ 1, k_abs ≥ 0, k_frac ∈ [0, 1]
// and the result is ≥ 1.
int64_t sparse_k(int64_t n, int64_t k_abs, double k_frac);

// One constraint per parameter in scope, sized by the K and radius rules; ν_l = ‖θ_l‖₂ of `params` as given
// (1 when zero). Throws on invalid options.
Constraints make_constraints(const optim::NamedTensors& params, const ConstraintOptions& options);

enum class Rescale { gradient, diameter, none };

struct SfwOptions {
  double lr = 1.0;  // η, the reference's default
  double momentum = 0.9;  // ρ ∈ [0, 1): buffer ← ρ·buffer + (1 − ρ)·g, the first buffer = g
  Rescale rescale = Rescale::gradient;
  double unconstrained_lr = 0.1;  // SGD lr of parameters without a constraint
};

// The optimizer. Two groups: constrained parameters (lr = options.lr) and unconstrained
// ones (lr = options.unconstrained_lr); scale_lr scales both. For a constrained θ with direction
// d (the momentum buffer, or the gradient when ρ = 0):
//   v = LMO(d);  α = clamp(η·‖d‖/‖θ − v‖ | η/D | η, 0, 1);  θ ← (1 − α)·θ + α·v
// (α = 0 when θ = v). Unconstrained: θ ← θ − η_u·d. No weight decay. Parameters without a
// gradient are skipped. State: "<param>.momentum_buffer", as SGD's.
class Sfw : public optim::Optimizer {
 public:
  Sfw(const optim::NamedTensors& params, Constraints constraints, const SfwOptions& options = {});
  void step() override;
  const char* name() const override { return "sfw"; }

  // Replaces every constrained parameter by shift_inside of itself (before training).
  void make_feasible();
  const Constraints& constraints() const { return constraints_; }
  const SfwOptions& options() const { return options_; }

  // One update of `p` (named `name`) along `d` at its group's current lr, no momentum; returns
  // ∂θ′/∂θ with d held constant: 1 − α for a constrained tensor, 1 for an unconstrained one.
  double update(const std::string& name, Tensor& p, const Tensor& d) const;

 private:
  double group_lr(const std::string& name) const;
  Constraints constraints_;
  SfwOptions options_;
};

// Learning-rate schemes: the lr factor (relative to η₀) in effect during epoch `epoch` (0-based) of `epochs`,
// replaying the rules at the start of every epoch 0..epoch. `epoch_losses[j]` is the training
// loss recorded for epoch j (its mean, or its last batch's loss to reproduce the code); at least
// `epoch` entries are needed for dynamic_change.
enum class LrScheme { keep, decrease_3, decrease_3_180, dynamic_change };
LrScheme lr_scheme_from_string(const std::string& name);  // keep | decrease_3 | decrease_3_180 | dynamic_change
double lr_scheme_factor(LrScheme scheme, int64_t epoch, int64_t epochs, const std::vector<double>& epoch_losses);

struct SfwInitOptions {
  int64_t iters = 390;
  double lr = 1e-3;  // Adam on the scales
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double min_scale = 0.01;  // for tensors whose name does not end in "bias" (those: 0)
  double grad_clip = 1.0;   // the scalar scale gradient is clipped to [−grad_clip, grad_clip]
};

struct SfwInitReport {
  int64_t iters = 0;
  double first_loss = 0, last_loss = 0;  // L0 of the first and the last iteration
  std::map<std::string, double> scales;  // a_l, by parameter name
};

// SFW-Init: learns one scale a_l per parameter so that one SFW step (of `opt`, at its
// current lr η, from the gradient of CE on [B0; B1]) lowers CE on [B0; B2] the most; every
// iteration draws three batches from `next_batch`, takes an Adam step on the scales with
// s_l = clip(⟨∂(L1/η)/∂θ_l, θ_l⟩·u_l/‖θ_l‖) and sets θ_l ← θ_l·a_l·u_l/‖θ_l‖ (u_l: the initial
// norm; tensors with u_l = 0, e.g. BN β, are left alone). Dropout is off, BN layers normalise with
// batch statistics and their running statistics are restored afterwards; the model's mode is
// restored too. First-order approximation (see the file comment). Weights may leave the
// constraint sets; the SFW steps pull them back in.
SfwInitReport sfw_init(nn::Module& model, Sfw& opt, const BatchSource& next_batch, const SfwInitOptions& options = {});

}  // namespace shears::prune
