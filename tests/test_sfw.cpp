// prune/sfw: the properties listed in docs/algorithms/sfw.md#properties-the-tests-check — LMO
// vertices and optimality (brute force), feasibility of iterates and of shift_inside, the K and
// radius rules, the effective lr and the EMA momentum, the lr schemes, the Frank-Wolfe gap on a
// convex problem, resume through state_dict, SFW-Init's invariants, and SFW-trained vs SGD-trained
// magnitude pruning.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "prune/algorithms/sfw.hpp"
#include "prune/masks.hpp"

using namespace shears;
using prune::KSparsePolytope;
using prune::LpBall;

namespace {

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
  return s;
}

// Every vertex of the K-sparse polytope in R^n: K positions, each ±τ.
std::vector<Tensor> all_vertices(int64_t n, int64_t k, float tau) {
  std::vector<Tensor> out;
  for (uint32_t support = 0; support < (1u << n); ++support) {
    if (__builtin_popcount(support) != k) continue;
    for (uint32_t signs = 0; signs < (1u << k); ++signs) {
      Tensor v = Tensor::zeros({n});
      int64_t j = 0;
      for (int64_t i = 0; i < n; ++i)
        if (support >> i & 1) v.data()[i] = (signs >> j++ & 1) ? tau : -tau;
      out.push_back(v);
    }
  }
  return out;
}

// A random point of the polytope: a random convex combination of random vertices.
Tensor random_point(const std::vector<Tensor>& vertices, Generator& gen) {
  Tensor x = Tensor::zeros(vertices.front().shape());
  std::vector<double> w(4);
  double total = 0;
  for (double& wi : w) total += wi = gen.uniform() + 1e-3;
  for (double wi : w) {
    const Tensor& v = vertices[gen.randint(static_cast<int64_t>(vertices.size()))];
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += static_cast<float>(wi / total) * v.data()[i];
  }
  return x;
}

int64_t nonzeros(const Tensor& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += t.data()[i] != 0.f;
  return n;
}

}  // namespace

TEST_CASE("sfw: the K-sparse LMO returns a vertex minimising <d, v> (brute force)", "[sfw]") {
  const int64_t n = 7, k = 3;
  const float tau = 0.7f;
  KSparsePolytope c(n, k, tau);
  auto vertices = all_vertices(n, k, tau);
  REQUIRE(vertices.size() == 35 * 8);
  Generator gen(3);
  for (int trial = 0; trial < 20; ++trial) {
    Tensor d = test::random_tensor({n}, 100 + trial);
    Tensor v = c.lmo(d);
    // Property 1: exactly K non-zeros of magnitude τ, opposite in sign to d, on the K largest |d_i|.
    REQUIRE(nonzeros(v) == k);
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::abs(d.data()[a]) > std::abs(d.data()[b]); });
    for (int64_t r = 0; r < n; ++r) {
      float vi = v.data()[order[r]], di = d.data()[order[r]];
      if (r < k) CHECK((std::abs(vi) == tau && vi * di < 0));
      else CHECK(vi == 0.f);
    }
    // Property 2: <d, v> = −τ Σ_topK |d_i| = the minimum over all vertices, ≤ <d, u> for interior u.
    double best = INFINITY;
    for (const Tensor& u : vertices) best = std::min(best, dot(d, u));
    double top = 0;
    for (int64_t r = 0; r < k; ++r) top += std::abs(d.data()[order[r]]);
    CHECK(dot(d, v) == Approx(best).epsilon(1e-6));
    CHECK(dot(d, v) == Approx(-tau * top).epsilon(1e-6));
    for (int j = 0; j < 10; ++j) CHECK(dot(d, v) <= dot(d, random_point(vertices, gen)) + 1e-6);
  }
}

TEST_CASE("sfw: LMO ties are broken by the lower index, and a 2-D tensor keeps its shape", "[sfw]") {
  KSparsePolytope c(6, 2, 1.0);
  Tensor d = Tensor::from_vector({2, 3}, {0.5f, -1.f, 0.2f, 1.f, -1.f, 1.f});
  Tensor v = c.lmo(d);
  CHECK(v.shape() == Shape{2, 3});
  CHECK(v.to_vector() == std::vector<float>{0.f, 1.f, 0.f, -1.f, 0.f, 0.f});
  CHECK_THROWS_WITH(c.lmo(Tensor::from_vector({6}, {0, 0, NAN, 0, 0, 0})), Catch::Contains("not finite"));
}

TEST_CASE("sfw: Lp-ball LMOs minimise <d, v> against random points of the ball", "[sfw]") {
  Generator gen(5);
  for (auto p : {LpBall::Norm::l1, LpBall::Norm::l2, LpBall::Norm::linf}) {
    LpBall ball(9, p, 0.5);
    Tensor d = test::random_tensor({9}, 17);
    Tensor v = ball.lmo(d);
    CHECK(ball.contains(v));
    for (int j = 0; j < 50; ++j) {
      Tensor u = ball.shift_inside(test::random_tensor({9}, 200 + j, -3.f, 3.f));
      REQUIRE(ball.contains(u));
      CHECK(dot(d, v) <= dot(d, u) + 1e-6);
    }
  }
  CHECK(LpBall::from_diameter(16, LpBall::Norm::linf, 8.0).radius() == Approx(1.0));
  CHECK(LpBall::from_diameter(16, LpBall::Norm::l2, 8.0).radius() == Approx(4.0));
}

TEST_CASE("sfw: shift_inside is feasible and parallel to its input", "[sfw]") {
  KSparsePolytope c(50, 5, 0.3);
  for (int trial = 0; trial < 10; ++trial) {
    Tensor x = test::random_tensor({50}, 40 + trial, -2.f, 2.f);
    Tensor y = c.shift_inside(x);
    CHECK(c.contains(y));
    CHECK_FALSE(c.contains(x));
    double cosine = dot(x, y) / std::sqrt(dot(x, x) * dot(y, y));
    CHECK(cosine == Approx(1.0).epsilon(1e-6));
  }
  Tensor inside = test::random_tensor({50}, 9, -0.01f, 0.01f);
  CHECK(c.shift_inside(inside).to_vector() == inside.to_vector());
}

TEST_CASE("sfw: K rule, radius and diameter rules", "[sfw]") {
  CHECK(prune::sparse_k(100, 10, 0.05) == 10);
  CHECK(prune::sparse_k(1000, 10, 0.05) == 50);
  CHECK(prune::sparse_k(5, 10, 0.05) == 5);
  CHECK(prune::sparse_k(1000, 0, 0.2) == 200);
  CHECK_THROWS_WITH(prune::sparse_k(100, 0, 0.001), Catch::Contains("K is 0"));
  CHECK_THROWS_WITH(prune::sparse_k(100, 10, 5.0), Catch::Contains("[0, 1]"));

  Tensor w = test::random_tensor({20, 50}, 1);
  optim::NamedTensors params{{"fc.weight", w}, {"bn.weight", Tensor::ones({16})}, {"bn.bias", Tensor::zeros({16})}};
  auto cs = prune::make_constraints(params, {});
  REQUIRE(cs.size() == 3);
  double nu = std::sqrt(dot(w, w));
  const auto& fc = dynamic_cast<const KSparsePolytope&>(*cs.at("fc.weight"));
  CHECK(fc.k() == 50);
  CHECK(fc.radius() == Approx(15.0 * nu / std::sqrt(50.0)));
  CHECK(fc.diameter() == Approx(2.0 * fc.radius() * std::sqrt(50.0)));
  CHECK(cs.at("bn.weight")->radius() == Approx(15.0 * 4.0 / std::sqrt(10.0)));  // ν = ‖1‖ = √16
  CHECK(cs.at("bn.bias")->radius() == Approx(15.0 / std::sqrt(10.0)));          // zero tensor: ν = 1

  auto weights_only = prune::make_constraints(params, {.scope = prune::ConstraintScope::conv_linear_weights,
                                                       .mode = prune::RadiusMode::radius, .tau = 0.25});
  REQUIRE(weights_only.size() == 1);
  CHECK(weights_only.at("fc.weight")->radius() == 0.25);
  auto by_diameter = prune::make_constraints(params, {.k_abs = 0, .k_frac = 0.5, .mode = prune::RadiusMode::diameter, .tau = 4.0});
  CHECK(by_diameter.at("bn.bias")->diameter() == Approx(4.0));
  CHECK(dynamic_cast<const KSparsePolytope&>(*by_diameter.at("bn.bias")).k() == 8);
}

TEST_CASE("sfw: effective lr, EMA momentum, skipped parameters and unconstrained SGD steps", "[sfw]") {
  Tensor w = Tensor::from_vector({4}, {0.1f, -0.2f, 0.05f, 0.f});
  Tensor b = Tensor::from_vector({2}, {1.f, 2.f});
  Tensor idle = Tensor::from_vector({3}, {0.1f, 0.1f, 0.1f});
  auto c = std::make_shared<KSparsePolytope>(4, 2, 0.5);
  optim::NamedTensors params{{"w", w}, {"b", b}, {"idle", idle}};
  prune::Sfw opt(params, {{"w", c}, {"idle", std::make_shared<KSparsePolytope>(3, 1, 1.0)}},
                 {.lr = 0.3, .momentum = 0.5, .rescale = prune::Rescale::gradient, .unconstrained_lr = 0.1});
  Tensor g1 = Tensor::from_vector({4}, {1.f, 0.5f, -2.f, 0.1f}), g2 = Tensor::from_vector({4}, {-1.f, 0.2f, 1.f, 0.3f});
  Tensor gb = Tensor::from_vector({2}, {1.f, -1.f});

  // Step 1: the buffer is the gradient itself; α = clamp(η‖d‖/‖θ − v‖, 0, 1).
  auto expect_step = [&](const Tensor& theta, const Tensor& d) {
    Tensor v = c->lmo(d), out = theta.clone();
    double dist = 0;
    for (int i = 0; i < 4; ++i) dist += std::pow(theta.data()[i] - v.data()[i], 2);
    double alpha = std::clamp(0.3 * std::sqrt(dot(d, d)) / std::sqrt(dist), 0.0, 1.0);
    for (int i = 0; i < 4; ++i) out.data()[i] = static_cast<float>((1 - alpha) * theta.data()[i] + alpha * v.data()[i]);
    return out;
  };
  Tensor expected = expect_step(w.clone(), g1);
  w.set_grad(g1.clone());
  b.set_grad(gb.clone());
  opt.step();
  test::require_close(w, expected, 1e-6, 1e-5);
  CHECK(idle.to_vector() == std::vector<float>{0.1f, 0.1f, 0.1f});  // no gradient: skipped
  CHECK(b.data()[0] == Approx(1.f - 0.1f));                         // unconstrained: θ − η_u·d
  // Step 2: buffer = ρ·g1 + (1 − ρ)·g2 (property 7), and the step uses it.
  Tensor buffer = Tensor::from_vector({4}, {0.f, 0.35f, -0.5f, 0.2f});
  expected = expect_step(w.clone(), buffer);
  w.set_grad(g2.clone());
  opt.step();
  auto state = opt.state_dict();
  auto it = std::find_if(state.begin(), state.end(), [](const auto& e) { return e.first == "w.momentum_buffer"; });
  REQUIRE(it != state.end());
  test::require_close(it->second, buffer, 1e-7, 1e-6);
  test::require_close(w, expected, 1e-6, 1e-5);

  // ρ = 0: the raw gradient; rescale none: α = η; diameter: α = η / D.
  for (auto rescale : {prune::Rescale::none, prune::Rescale::diameter}) {
    Tensor x = Tensor::from_vector({4}, {0.1f, -0.2f, 0.05f, 0.f});
    prune::Sfw plain({{"x", x}}, {{"x", c}}, {.lr = 0.3, .momentum = 0.0, .rescale = rescale});
    x.set_grad(g1.clone());
    plain.step();
    double alpha = rescale == prune::Rescale::none ? 0.3 : 0.3 / c->diameter();
    Tensor v = c->lmo(g1);
    for (int i = 0; i < 4; ++i)
      CHECK(x.data()[i] == Approx((1 - alpha) * std::vector<float>{0.1f, -0.2f, 0.05f, 0.f}[i] + alpha * v.data()[i]));
    CHECK(plain.state_dict().size() == 1);  // only "step": no momentum buffer
  }
}

TEST_CASE("sfw: iterates stay in the polytope (convex combinations of vertices)", "[sfw]") {
  Generator gen(11);
  Tensor w = test::random_tensor({8, 12}, 2, -3.f, 3.f);
  auto c = std::make_shared<KSparsePolytope>(96, 6, 0.2);
  prune::Sfw opt({{"w", w}}, {{"w", c}}, {.lr = 5.0});  // large η: α is clamped to 1 at times
  CHECK_FALSE(c->contains(w));
  opt.make_feasible();
  REQUIRE(c->contains(w));
  for (int t = 0; t < 200; ++t) {
    w.set_grad(Tensor::randn({8, 12}, gen));
    opt.step();
    REQUIRE(c->contains(w));
  }
}

TEST_CASE("sfw: the Frank-Wolfe gap goes to zero on a convex quadratic", "[sfw]") {
  // f(x) = ½‖x − b‖² over a K-sparse polytope that excludes b; deterministic FW, α_t = 2/(t + 2).
  const int64_t n = 40;
  Tensor b = test::random_tensor({n}, 21, -1.f, 1.f);
  auto c = std::make_shared<KSparsePolytope>(n, 4, 0.3);
  Tensor x = Tensor::zeros({n});
  prune::Sfw opt({{"x", x}}, {{"x", c}}, {.lr = 1.0, .momentum = 0.0, .rescale = prune::Rescale::none});
  auto grad = [&] { return sub(x, b); };
  double first = prune::frank_wolfe_gap(*c, grad(), x), late_best = INFINITY;
  REQUIRE(first > 0.1);
  const int T = 2000;
  for (int t = 0; t < T; ++t) {
    Tensor g = grad();
    double gap = prune::frank_wolfe_gap(*c, g, x);
    CHECK(gap >= -1e-5);
    if (t >= T / 2) late_best = std::min(late_best, gap);
    opt.set_lr(2.0 / (t + 2.0));
    x.set_grad(g);
    opt.step();
    REQUIRE(c->contains(x));
  }
  CHECK(late_best < 0.01 * first);
}

TEST_CASE("sfw: lr schemes", "[sfw]") {
  using prune::LrScheme;
  std::vector<double> none;
  CHECK(prune::lr_scheme_factor(LrScheme::keep, 100, 180, none) == 1.0);
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 59, 180, none) == 1.0);
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 60, 180, none) == Approx(0.1));
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 119, 180, none) == Approx(0.1));
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 120, 180, none) == Approx(0.01));
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 3, 10, none) == Approx(0.1));   // floor(10/3)
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3, 6, 10, none) == Approx(0.01));  // floor(20/3)
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3_180, 130, 180, none) == Approx(0.01));
  CHECK(prune::lr_scheme_factor(LrScheme::decrease_3_180, 89, 180, none) == 1.0);

  // dynamic_change with 300 epochs (no ÷10 before epoch 100): falling losses ⇒ ×1.06 at 25, 30;
  // a loss rise in epochs 29..33 makes the 5-epoch mean exceed the 10-epoch mean at 35 ⇒ ×0.7.
  std::vector<double> losses;
  for (int e = 0; e < 40; ++e) losses.push_back(e >= 29 && e <= 33 ? 5.0 : 2.0 - 0.01 * e);
  CHECK(prune::lr_scheme_factor(LrScheme::dynamic_change, 24, 300, losses) == 1.0);
  CHECK(prune::lr_scheme_factor(LrScheme::dynamic_change, 25, 300, losses) == Approx(1.06));
  CHECK(prune::lr_scheme_factor(LrScheme::dynamic_change, 30, 300, losses) == Approx(1.06 * 1.06));
  CHECK(prune::lr_scheme_factor(LrScheme::dynamic_change, 35, 300, losses) == Approx(1.06 * 1.06 * 0.7));
  CHECK_THROWS_WITH(prune::lr_scheme_factor(LrScheme::dynamic_change, 30, 300, none), Catch::Contains("needs the losses"));
  CHECK(prune::lr_scheme_from_string("decrease_3") == LrScheme::decrease_3);
  CHECK_THROWS(prune::lr_scheme_from_string("cosine"));
}

namespace {

// 16 Gaussian features; the class (of 4) is the argmax of a teacher that reads only features 0–3.
struct Synthetic {
  Tensor x;
  std::vector<int64_t> y;
};

Synthetic synthetic(int64_t n, uint64_t seed) {
  Generator gen(seed);
  Synthetic s{Tensor::randn({n, 16}, gen), {}};
  const float teacher[4][4] = {{2, -1, 0, 1}, {-1, 2, 1, 0}, {0, 1, -2, 1}, {1, 0, 1, -2}};
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = s.x.data() + i * 16;
    int64_t best = 0;
    float best_score = -INFINITY;
    for (int c = 0; c < 4; ++c) {
      float score = 0;
      for (int j = 0; j < 4; ++j) score += teacher[c][j] * xi[j];
      if (score > best_score) best_score = score, best = c;
    }
    s.y.push_back(best);
  }
  return s;
}

std::shared_ptr<nn::Sequential> tiny_mlp(uint64_t seed) {
  Generator gen(seed);
  return nn::sequential({std::make_shared<nn::Linear>(16, 64, true, gen), std::make_shared<nn::ReLU>(),
                         std::make_shared<nn::Linear>(64, 4, true, gen)});
}

void train(nn::Module& model, optim::Optimizer& opt, const Synthetic& data, int epochs) {
  const int64_t batch = 64, n = data.x.size(0);
  model.train();
  for (int e = 0; e < epochs; ++e)
    for (int64_t i = 0; i + batch <= n; i += batch) {
      std::vector<int64_t> y(data.y.begin() + i, data.y.begin() + i + batch);
      Tensor loss = cross_entropy(model(data.x.rows(i, i + batch)), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
}

double accuracy(nn::Module& model, const Synthetic& data) {
  NoGradGuard guard;
  model.eval();
  Tensor logits = model(data.x);
  int64_t correct = 0;
  for (int64_t i = 0; i < logits.size(0); ++i) {
    const float* row = logits.data() + i * 4;
    correct += std::max_element(row, row + 4) - row == data.y[i];
  }
  return static_cast<double>(correct) / logits.size(0);
}

// Global magnitude pruning of the weight matrices at `sparsity`, on a copy.
double pruned_accuracy(const nn::Module& model, double sparsity, const Synthetic& test) {
  auto copy = model.clone();
  optim::NamedTensors scores;
  for (const auto& [name, p] : copy->named_parameters())
    if (p.dim() >= 2) scores.emplace_back(name, abs(p.detach()));
  prune::apply_masks(*copy, prune::masks_from_scores(scores, {.sparsity = sparsity}));
  return accuracy(*copy, test);
}

}  // namespace

TEST_CASE("sfw: an SFW-trained MLP survives magnitude pruning better than its SGD twin", "[sfw]") {
  Synthetic train_set = synthetic(2048, 1), test_set = synthetic(1024, 2);
  auto sgd_model = tiny_mlp(7), sfw_model = tiny_mlp(7);
  optim::Sgd sgd({{sgd_model->named_parameters(), 0.1, 0.0, 0.1}}, {.lr = 0.1, .momentum = 0.9});
  prune::Sfw sfw(sfw_model->named_parameters(), prune::make_constraints(sfw_model->named_parameters(), {}), {});
  sfw.make_feasible();
  train(*sgd_model, sgd, train_set, 20);
  train(*sfw_model, sfw, train_set, 20);
  double sgd_dense = accuracy(*sgd_model, test_set), sfw_dense = accuracy(*sfw_model, test_set);
  double sgd_90 = pruned_accuracy(*sgd_model, 0.9, test_set), sfw_90 = pruned_accuracy(*sfw_model, 0.9, test_set);
  double sgd_95 = pruned_accuracy(*sgd_model, 0.95, test_set), sfw_95 = pruned_accuracy(*sfw_model, 0.95, test_set);
  INFO("dense sgd " << sgd_dense << " sfw " << sfw_dense << "; 90%: sgd " << sgd_90 << " sfw " << sfw_90
                    << "; 95%: sgd " << sgd_95 << " sfw " << sfw_95);
  CHECK(sgd_dense > 0.9);
  CHECK(sfw_dense > 0.85);
  CHECK(sfw_dense - sfw_90 < sgd_dense - sgd_90);
  CHECK(sfw_dense - sfw_95 < sgd_dense - sgd_95);
  CHECK(sfw_95 > sgd_95 + 0.05);
}

TEST_CASE("sfw: state_dict resumes a run exactly (momentum keyed by parameter name)", "[sfw]") {
  Synthetic data = synthetic(512, 4);
  auto run = [&](bool interrupt) {
    auto model = tiny_mlp(3);
    auto params = model->named_parameters();
    // Constraints are sized from the initial weights: a resumed run rebuilds them from a freshly
    // initialised twin (same seed), as `shears train --resume` does, never from trained weights.
    auto make = [&] {
      return std::make_unique<prune::Sfw>(params, prune::make_constraints(tiny_mlp(3)->named_parameters(), {}), prune::SfwOptions{});
    };
    auto opt = make();
    opt->make_feasible();
    train(*model, *opt, data, 1);
    if (interrupt) {
      auto state = opt->state_dict();
      CHECK(std::any_of(state.begin(), state.end(), [](const auto& e) { return e.first == "2.weight.momentum_buffer"; }));
      opt = make();  // a fresh optimizer, as after --resume
      opt->load_state_dict(state);
    }
    train(*model, *opt, data, 1);
    return model->named_parameters();
  };
  auto straight = run(false), resumed = run(true);
  for (size_t i = 0; i < straight.size(); ++i) CHECK(straight[i].second.to_vector() == resumed[i].second.to_vector());
}

TEST_CASE("sfw: SFW-Init keeps directions, bounds the scales and restores BN statistics and mode", "[sfw]") {
  Generator gen(8);
  auto model = nn::sequential({std::make_shared<nn::Linear>(16, 32, true, gen), std::make_shared<nn::BatchNorm1d>(32),
                               std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(32, 4, true, gen)});
  auto params = model->named_parameters();
  prune::Sfw opt(params, prune::make_constraints(params, {}), {});
  opt.make_feasible();
  std::map<std::string, Tensor> before;
  for (const auto& [name, p] : params) before[name] = p.clone();
  Tensor running_mean = model->buffer("1.running_mean").clone();
  Synthetic data = synthetic(64 * 30, 5);
  int64_t next = 0;
  auto next_batch = [&] {
    Batch b;
    b.images = data.x.rows(next * 64, next * 64 + 64);
    b.labels.assign(data.y.begin() + next * 64, data.y.begin() + next * 64 + 64);
    next = (next + 1) % 30;
    return b;
  };
  auto report = prune::sfw_init(*model, opt, next_batch, {.iters = 40, .lr = 0.05, .min_scale = 0.5});
  CHECK(report.iters == 40);
  CHECK(model->is_training());
  CHECK(model->buffer("1.running_mean").to_vector() == running_mean.to_vector());
  bool any_moved = false;
  for (const auto& [name, p] : params) {
    const Tensor& b = before[name];
    double nb = std::sqrt(dot(b, b)), np = std::sqrt(dot(p, p));
    double scale = report.scales.at(name);
    CHECK(scale >= (name.ends_with("bias") ? 0.0 : 0.5));
    if (nb == 0) {  // BN β: no initial norm, left alone
      CHECK(np == 0);
      continue;
    }
    CHECK(np == Approx(scale * nb).epsilon(1e-4));  // θ = a·u·θ/‖θ‖
    if (scale > 0) CHECK(dot(b, p) / (nb * np) == Approx(1.0).epsilon(1e-5));
    any_moved |= std::abs(scale - 1.0) > 1e-3;
  }
  CHECK(any_moved);
}
