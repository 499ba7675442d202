// SFW-pruning: constraints, LMOs, the optimizer, lr schemes and SFW-Init (docs/algorithms/sfw.md; the
// departures from the official code are listed in sfw.hpp).
#include "prune/algorithms/sfw.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"

namespace shears::prune {

namespace {

double l2_norm(const Tensor& x) { return std::sqrt(kernels::kernels().dot(x.data(), x.data(), x.numel())); }

double l1_norm(const Tensor& x) {
  double s = 0;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) s += std::abs(p[i]);
  return s;
}

double linf_norm(const Tensor& x) {
  float m = 0.f;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(p[i]));
  return m;
}

// ‖a − b‖₂ in double.
double l2_distance(const Tensor& a, const Tensor& b) {
  double s = 0;
  const float *pa = a.data(), *pb = b.data();
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = static_cast<double>(pa[i]) - pb[i];
    s += d * d;
  }
  return std::sqrt(s);
}

float sign_of(float x) { return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f); }

void check_direction(const Tensor& d, int64_t n, const char* where) {
  SHEARS_CHECK(d.numel() == n, where, "direction has ", d.numel(), " entries, the constraint ", n);
  const float* p = d.data();
  for (int64_t i = 0; i < n; ++i)
    SHEARS_CHECK(std::isfinite(p[i]), where, "direction entry ", i, " is ", p[i], "; the gradient is not finite");
}

}  // namespace

// ---- KSparsePolytope

KSparsePolytope::KSparsePolytope(int64_t n, int64_t k, double radius) : n_(n), k_(k), tau_(radius) {
  SHEARS_CHECK(n >= 1 && k >= 1 && k <= n, "KSparsePolytope", "need 1 <= K <= n, got K = ", k, ", n = ", n);
  SHEARS_CHECK(radius > 0 && std::isfinite(radius), "KSparsePolytope", "radius must be positive, got ", radius);
}

KSparsePolytope KSparsePolytope::from_diameter(int64_t n, int64_t k, double diameter) {
  SHEARS_CHECK(k >= 1, "KSparsePolytope", "K must be >= 1, got ", k);
  return KSparsePolytope(n, k, diameter / (2.0 * std::sqrt(static_cast<double>(k))));
}

double KSparsePolytope::diameter() const { return 2.0 * tau_ * std::sqrt(static_cast<double>(k_)); }

Tensor KSparsePolytope::lmo(const Tensor& d) const {
  check_direction(d, n_, "KSparsePolytope::lmo");
  const float* g = d.data();
  // The K-th largest |d_i| (t), then every |d_i| > t and the first K − #{|d_i| > t} with |d_i| = t.
  std::vector<float> mag(n_);
  for (int64_t i = 0; i < n_; ++i) mag[i] = std::abs(g[i]);
  std::nth_element(mag.begin(), mag.begin() + (k_ - 1), mag.end(), std::greater<float>());
  const float t = mag[k_ - 1];
  int64_t above = 0;
  for (int64_t i = 0; i < n_; ++i) above += std::abs(g[i]) > t;
  int64_t ties_left = k_ - above;
  Tensor v = Tensor::zeros(d.shape());
  float* out = v.data();
  const float tau = static_cast<float>(tau_);
  for (int64_t i = 0; i < n_; ++i) {
    float a = std::abs(g[i]);
    if (a > t || (a == t && ties_left-- > 0)) out[i] = -tau * sign_of(g[i]);
  }
  return v;
}

Tensor KSparsePolytope::shift_inside(const Tensor& x) const {
  SHEARS_CHECK(x.numel() == n_, "KSparsePolytope::shift_inside", "tensor has ", x.numel(), " entries, the constraint ", n_);
  double l1 = l1_norm(x), linf = linf_norm(x);
  if (l1 <= tau_ * k_ && linf <= tau_) return x.clone();
  // x̂ = x/‖x‖₁ has ‖x̂‖₁ = 1; c = min(floor(1/‖x̂‖∞), K) gives ‖c·τ·x̂‖∞ ≤ τ and ‖c·τ·x̂‖₁ ≤ Kτ.
  double linf_unit = linf / l1;
  double c = std::min(std::floor(1.0 / linf_unit), static_cast<double>(k_));
  Tensor y = x.clone();
  kernels::kernels().scale_shift(y.data(), y.data(), y.numel(), static_cast<float>(c * tau_ / l1), 0.f);
  return y;
}

bool KSparsePolytope::contains(const Tensor& x, double rel_tol) const {
  return linf_norm(x) <= tau_ * (1 + rel_tol) && l1_norm(x) <= tau_ * k_ * (1 + rel_tol);
}

// ---- LpBall

LpBall::LpBall(int64_t n, Norm p, double radius) : n_(n), p_(p), r_(radius) {
  SHEARS_CHECK(n >= 1, "LpBall", "n must be >= 1, got ", n);
  SHEARS_CHECK(radius > 0 && std::isfinite(radius), "LpBall", "radius must be positive, got ", radius);
}

LpBall LpBall::from_diameter(int64_t n, Norm p, double diameter) {
  double half = diameter / 2.0;
  return LpBall(n, p, p == Norm::linf ? half / std::sqrt(static_cast<double>(n)) : half);
}

double LpBall::diameter() const { return p_ == Norm::linf ? 2.0 * r_ * std::sqrt(static_cast<double>(n_)) : 2.0 * r_; }

double LpBall::norm(const Tensor& x) const {
  return p_ == Norm::l1 ? l1_norm(x) : p_ == Norm::l2 ? l2_norm(x) : linf_norm(x);
}

Tensor LpBall::lmo(const Tensor& d) const {
  check_direction(d, n_, "LpBall::lmo");
  Tensor v = Tensor::zeros(d.shape());
  const float* g = d.data();
  float* out = v.data();
  const float r = static_cast<float>(r_);
  if (p_ == Norm::l1) {
    int64_t best = 0;
    for (int64_t i = 1; i < n_; ++i)
      if (std::abs(g[i]) > std::abs(g[best])) best = i;
    out[best] = -r * sign_of(g[best]);
  } else if (p_ == Norm::l2) {
    double nd = l2_norm(d);
    if (nd > 0)
      for (int64_t i = 0; i < n_; ++i) out[i] = static_cast<float>(-r_ * g[i] / nd);
  } else {
    for (int64_t i = 0; i < n_; ++i) out[i] = g[i] > 0.f ? -r : r;
  }
  return v;
}

Tensor LpBall::shift_inside(const Tensor& x) const {
  SHEARS_CHECK(x.numel() == n_, "LpBall::shift_inside", "tensor has ", x.numel(), " entries, the constraint ", n_);
  double nx = norm(x);
  Tensor y = x.clone();
  if (nx > r_) kernels::kernels().scale_shift(y.data(), y.data(), y.numel(), static_cast<float>(r_ / nx), 0.f);
  return y;
}

bool LpBall::contains(const Tensor& x, double rel_tol) const { return norm(x) <= r_ * (1 + rel_tol); }

double frank_wolfe_gap(const Constraint& c, const Tensor& grad, const Tensor& x) {
  SHEARS_CHECK(grad.numel() == x.numel(), "frank_wolfe_gap", "gradient has ", grad.numel(), " entries, x ", x.numel());
  Tensor v = c.lmo(grad);
  const kernels::Table& k = kernels::kernels();
  return k.dot(grad.data(), x.data(), x.numel()) - k.dot(grad.data(), v.data(), v.numel());
}

// ---- Constraint construction (docs/algorithms/sfw.md#sizing-the-constraints)

int64_t sparse_k(int64_t n, int64_t k_abs, double k_frac) {
  SHEARS_CHECK(n >= 1, "sfw", "a constrained tensor needs at least one entry");
  SHEARS_CHECK(k_abs >= 0, "sfw", "K (absolute) must be >= 0, got ", k_abs);
  SHEARS_CHECK(k_frac >= 0.0 && k_frac <= 1.0, "sfw",
               "K fraction must be in [0, 1] (a density of each tensor), got ", k_frac);
  int64_t k = std::min(std::max(k_abs, static_cast<int64_t>(std::floor(k_frac * static_cast<double>(n)))), n);
  SHEARS_CHECK(k >= 1, "sfw", "K is 0 for a tensor of ", n, " entries; raise K or the K fraction");
  return k;
}

Constraints make_constraints(const optim::NamedTensors& params, const ConstraintOptions& o) {
  SHEARS_CHECK(o.tau > 0 && std::isfinite(o.tau), "sfw", "tau must be positive, got ", o.tau);
  Constraints out;
  for (const auto& [name, p] : params) {
    if (o.scope == ConstraintScope::conv_linear_weights && p.dim() < 2) continue;
    int64_t n = p.numel();
    double nu = l2_norm(p);
    if (nu == 0.0) nu = 1.0;
    std::shared_ptr<const Constraint> c;
    if (o.kind == ConstraintKind::k_sparse) {
      int64_t k = sparse_k(n, o.k_abs, o.k_frac);
      if (o.mode == RadiusMode::radius) c = std::make_shared<KSparsePolytope>(n, k, o.tau);
      else c = std::make_shared<KSparsePolytope>(KSparsePolytope::from_diameter(n, k, o.mode == RadiusMode::diameter ? o.tau : 2.0 * o.tau * nu));
    } else {
      LpBall::Norm p_norm = o.kind == ConstraintKind::l1 ? LpBall::Norm::l1 : o.kind == ConstraintKind::l2 ? LpBall::Norm::l2 : LpBall::Norm::linf;
      if (o.mode == RadiusMode::radius) c = std::make_shared<LpBall>(n, p_norm, o.tau);
      else c = std::make_shared<LpBall>(LpBall::from_diameter(n, p_norm, o.mode == RadiusMode::diameter ? o.tau : 2.0 * o.tau * nu));
    }
    out.emplace(name, std::move(c));
  }
  return out;
}

// ---- The optimizer (docs/algorithms/sfw.md#the-optimizer-step)

namespace {

std::vector<optim::ParamGroup> sfw_groups(const optim::NamedTensors& params, const Constraints& constraints,
                                          const SfwOptions& o) {
  optim::ParamGroup constrained{{}, o.lr, 0.0, o.lr}, free{{}, o.unconstrained_lr, 0.0, o.unconstrained_lr};
  for (const auto& np : params) (constraints.count(np.first) ? constrained : free).params.push_back(np);
  std::vector<optim::ParamGroup> groups;
  if (!constrained.params.empty()) groups.push_back(std::move(constrained));
  if (!free.params.empty()) groups.push_back(std::move(free));
  return groups;
}

}  // namespace

Sfw::Sfw(const optim::NamedTensors& params, Constraints constraints, const SfwOptions& options)
    : Optimizer(sfw_groups(params, constraints, options)), constraints_(std::move(constraints)), options_(options) {
  SHEARS_CHECK(options.momentum >= 0.0 && options.momentum < 1.0, "sfw", "momentum must be in [0, 1), got ",
               options.momentum);
  for (const auto& [name, c] : constraints_) {
    auto it = std::find_if(params.begin(), params.end(), [&key = name](const auto& np) { return np.first == key; });
    SHEARS_CHECK(it != params.end(), "sfw", "a constraint names '", name, "', which is not a parameter of this optimizer");
    SHEARS_CHECK(c != nullptr, "sfw", "the constraint of '", name, "' is null");
    SHEARS_CHECK(c->size() == it->second.numel(), "sfw", "the constraint of '", name, "' has ", c->size(),
                 " entries, the parameter ", it->second.numel());
  }
}

void Sfw::make_feasible() {
  for (optim::ParamGroup& g : param_groups())
    for (auto& [name, p] : g.params) {
      auto it = constraints_.find(name);
      if (it != constraints_.end()) p.copy_(it->second->shift_inside(p));
    }
}

double Sfw::group_lr(const std::string& name) const {
  for (const optim::ParamGroup& g : param_groups())
    for (const auto& np : g.params)
      if (np.first == name) return g.lr;
  throw Error("sfw: '" + name + "' is not a parameter of this optimizer");
}

double Sfw::update(const std::string& name, Tensor& p, const Tensor& d) const {
  const kernels::Table& k = kernels::kernels();
  double lr = group_lr(name);
  auto it = constraints_.find(name);
  if (it == constraints_.end()) {
    float* w = p.data();
    const float* dd = d.data();
    for (int64_t i = 0; i < p.numel(); ++i) w[i] -= static_cast<float>(lr) * dd[i];
    return 1.0;
  }
  const Constraint& c = *it->second;
  Tensor v = c.lmo(d);
  double alpha = lr;
  if (options_.rescale == Rescale::gradient) {
    double dist = l2_distance(p, v);
    alpha = dist > 0 ? lr * l2_norm(d) / dist : 0.0;
  } else if (options_.rescale == Rescale::diameter) {
    alpha = lr / c.diameter();
  }
  alpha = std::clamp(alpha, 0.0, 1.0);
  // θ ← (1 − α)·θ + α·v
  k.scale_shift(p.data(), p.data(), p.numel(), static_cast<float>(1.0 - alpha), 0.f);
  float* w = p.data();
  const float* pv = v.data();
  const float a = static_cast<float>(alpha);
  for (int64_t i = 0; i < p.numel(); ++i) w[i] += a * pv[i];
  return 1.0 - alpha;
}

void Sfw::step() {
  profile::OpScope scope("optimizer step");
  const float rho = static_cast<float>(options_.momentum);
  for (optim::ParamGroup& g : param_groups())
    for (auto& [name, p] : g.params) {
      if (!p.grad().defined()) continue;
      Tensor d = p.grad();
      if (rho != 0.f) {
        bool first = !has_state(name, "momentum_buffer");
        Tensor& buf = state(name, "momentum_buffer", p.shape());
        float* b = buf.data();
        const float* gr = d.data();
        if (first) std::memcpy(b, gr, sizeof(float) * p.numel());
        else
          for (int64_t i = 0; i < p.numel(); ++i) b[i] = rho * b[i] + (1.f - rho) * gr[i];
        d = buf;
      }
      update(name, p, d);
    }
  ++steps_;
}

// ---- Learning-rate schemes (docs/algorithms/sfw.md#learning-rate-schemes)

LrScheme lr_scheme_from_string(const std::string& name) {
  if (name == "keep") return LrScheme::keep;
  if (name == "decrease_3") return LrScheme::decrease_3;
  if (name == "decrease_3_180") return LrScheme::decrease_3_180;
  if (name == "dynamic_change") return LrScheme::dynamic_change;
  throw Error("sfw: unknown lr scheme '" + name + "'; expected keep, decrease_3, decrease_3_180 or dynamic_change");
}

double lr_scheme_factor(LrScheme scheme, int64_t epoch, int64_t epochs, const std::vector<double>& losses) {
  SHEARS_CHECK(epoch >= 0 && epochs > 0, "sfw lr scheme", "need epoch >= 0 and epochs > 0, got ", epoch, ", ", epochs);
  SHEARS_CHECK(scheme != LrScheme::dynamic_change || static_cast<int64_t>(losses.size()) >= epoch, "sfw lr scheme",
               "dynamic_change at epoch ", epoch, " needs the losses of the ", epoch, " epochs before it, got ",
               losses.size());
  auto mean = [&](int64_t from, int64_t to) {  // mean of losses[from, to)
    double s = 0;
    for (int64_t j = from; j < to; ++j) s += losses[j];
    return s / static_cast<double>(to - from);
  };
  double f = 1.0;
  for (int64_t e = 0; e <= epoch; ++e) {
    if (scheme == LrScheme::decrease_3 || scheme == LrScheme::dynamic_change) {
      if (e == epochs / 3 || e == 2 * epochs / 3) f /= 10.0;
    } else if (scheme == LrScheme::decrease_3_180) {
      if (e == 90 || e == 130) f /= 10.0;
    }
    if (scheme == LrScheme::dynamic_change && e > 20 && e % 5 == 0) {
      double a5 = mean(e - 6, e - 1), a10 = mean(e - 11, e - 1);
      if (a5 > a10) f *= 0.7;
      else if (a5 < a10) f *= 1.06;
    }
  }
  return f;
}

// ---- SFW-Init (docs/algorithms/sfw.md#sfw-init)

namespace {

Batch concat_batches(const Batch& a, const Batch& b) {
  Batch out;
  out.images = concat({a.images, b.images}, 0);
  out.labels = a.labels;
  out.labels.insert(out.labels.end(), b.labels.begin(), b.labels.end());
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct ScaleState {
  double a = 1.0, u = 0.0, m = 0.0, v = 0.0, min_scale = 0.0;
  int64_t t = 0;
};

}  // namespace

SfwInitReport sfw_init(nn::Module& model, Sfw& opt, const BatchSource& next_batch, const SfwInitOptions& o) {
  SHEARS_CHECK(o.iters >= 0 && o.lr > 0 && o.min_scale >= 0 && o.grad_clip >= 0, "sfw-init",
               "need iters >= 0, lr > 0, min_scale >= 0 and grad_clip >= 0");
  double eta = opt.param_groups().front().lr;
  SHEARS_CHECK(eta > 0, "sfw-init", "the SFW learning rate must be positive, got ", eta);
  optim::NamedTensors params;
  for (const optim::ParamGroup& g : opt.param_groups()) params.insert(params.end(), g.params.begin(), g.params.end());
  std::map<std::string, ScaleState> scales;
  for (const auto& [name, p] : params) {
    ScaleState& s = scales[name];
    s.u = l2_norm(p);
    s.min_scale = ends_with(name, "bias") ? 0.0 : o.min_scale;
  }

  // Dropout off, BN on batch statistics; running statistics saved and restored.
  bool was_training = model.is_training();
  model.eval();
  for (auto& [path, m] : model.named_modules())
    if (std::string(m->type_name()).find("BatchNorm") != std::string::npos) m->train(true);
  std::vector<std::pair<std::string, Tensor>> buffers;
  for (const auto& [name, b] : model.named_buffers()) buffers.emplace_back(name, b.clone());

  SfwInitReport report;
  for (int64_t it = 0; it < o.iters; ++it) {
    Batch b0 = next_batch(), b1 = next_batch(), b2 = next_batch();
    // L0 on [B0; B1] and its gradient g.
    opt.zero_grad();
    Batch init = concat_batches(b0, b1);
    Tensor l0 = cross_entropy(model(init.images), init.labels);
    l0.backward();
    // θ′ = (1 − α)θ + α·LMO(g), in place; θ kept aside.
    std::map<std::string, Tensor> saved;
    std::map<std::string, double> dtheta;
    for (auto& [name, p] : params) {
      if (!p.grad().defined()) continue;
      saved[name] = p.clone();
      Tensor g = p.grad().clone();
      dtheta[name] = opt.update(name, p, g);
    }
    // L1 = CE on [B0; B2] at θ′, divided by η; its gradient w.r.t. θ is (1 − α)·∂L1/∂θ′.
    opt.zero_grad();
    Batch upd = concat_batches(b0, b2);
    Tensor l1 = mul(cross_entropy(model(upd.images), upd.labels), static_cast<float>(1.0 / eta));
    l1.backward();
    for (auto& [name, p] : params) {
      auto sv = saved.find(name);
      if (sv == saved.end()) continue;
      Tensor g1 = p.grad();
      p.copy_(sv->second);
      ScaleState& s = scales[name];
      double cur = l2_norm(p);
      if (s.u == 0.0 || cur == 0.0 || !g1.defined()) continue;
      double grad = dtheta[name] * kernels::kernels().dot(g1.data(), p.data(), p.numel()) * s.u / cur;
      if (o.grad_clip > 0) grad = std::clamp(grad, -o.grad_clip, o.grad_clip);
      ++s.t;
      s.m = o.beta1 * s.m + (1 - o.beta1) * grad;
      s.v = o.beta2 * s.v + (1 - o.beta2) * grad * grad;
      double denom = std::sqrt(s.v / (1 - std::pow(o.beta2, s.t))) + o.eps;
      double step = o.lr / (1 - std::pow(o.beta1, s.t));
      s.a = std::max(s.a - step * s.m / denom, s.min_scale);
      kernels::kernels().scale_shift(p.data(), p.data(), p.numel(), static_cast<float>(s.a * s.u / cur), 0.f);
    }
    opt.zero_grad();
    if (it == 0) report.first_loss = l0.item();
    report.last_loss = l0.item();
    report.iters = it + 1;
  }

  for (const auto& [name, b] : buffers) model.buffer(name).copy_(b);
  model.train(was_training);
  for (const auto& [name, s] : scales) report.scales[name] = s.a;
  return report;
}

}  // namespace shears::prune
