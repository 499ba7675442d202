// prune/: scope, exact-count masks, masks through optimizers and checkpoints, unstructured baselines.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "core/ops.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "optim/optimizer.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/masks.hpp"
#include "prune/scope.hpp"

using namespace shears;
using prune::Distribution;
using prune::SparsityTarget;

namespace {

nn::ModelOptions tiny_mlp(std::vector<int64_t> widths = {6, 5}, bool bias = true) {
  return {.in_channels = 1, .num_classes = 3, .input_size = 3, .widths = std::move(widths), .bias = bias};
}

int64_t zeros_of(const Tensor& t) {
  int64_t z = 0;
  for (int64_t i = 0; i < t.numel(); ++i) z += t.data()[i] == 0.f;
  return z;
}

Batch tiny_batch(int64_t n, int64_t c, int64_t hw, int64_t classes, uint64_t seed) {
  Batch b;
  b.images = test::random_tensor({n, c, hw, hw}, seed);
  for (int64_t i = 0; i < n; ++i) b.labels.push_back(i % classes);
  return b;
}

}  // namespace

TEST_CASE("prune_count is floor(s·d), robust to rounding", "[prune]") {
  CHECK(prune::prune_count(0.29, 100) == 29);
  CHECK(prune::prune_count(0.5, 7) == 3);
  CHECK(prune::prune_count(0.0, 7) == 0);
  CHECK(prune::prune_count(1.0, 7) == 7);
  CHECK(prune::prune_count(0.999, 1000) == 999);
}

TEST_CASE("keep_floor keeps floor((1 - s)·d), as the official codes count", "[prune]") {
  CHECK(prune::prune_count(0.5, 7, true) == 4);  // keeps 3 where the default keeps 4
  CHECK(prune::prune_count(0.5, 7, false) == 3);
  CHECK(prune::prune_count(0.9, 100, true) == 90);  // s·d whole: both agree
  CHECK(prune::prune_count(0.9, 7, true) == 7);     // floor(0.7) = 0 kept
  CHECK(prune::prune_count(0.0, 7, true) == 0);
  prune::NamedTensors scores{{"a", Tensor::from_vector({7}, {1, 2, 3, 4, 5, 6, 7})}};
  for (auto distribution : {prune::Distribution::global, prune::Distribution::per_layer}) {
    auto masks = prune::masks_from_scores(scores, {.sparsity = 0.5, .distribution = distribution, .keep_floor = true});
    CHECK(masks[0].second.to_vector() == std::vector<float>{0, 0, 0, 0, 1, 1, 1});
  }
}

TEST_CASE("scope: conv and linear weights by default, include/exclude by regex, first and last", "[prune]") {
  auto resnet = nn::make_model("resnet20", {.widths = {}});
  auto names = prune::prunable_parameters(*resnet);
  CHECK(names.size() == 1 + 18 + 2 + 1);  // stem, 9 blocks × 2 convs, 2 downsample convs, fc
  CHECK(names.front() == "conv1.weight");
  CHECK(names.back() == "fc.weight");
  CHECK(std::find(names.begin(), names.end(), "layer2.0.downsample.0.weight") != names.end());
  for (auto& n : names) CHECK(n.find("bn") == std::string::npos);

  auto trimmed = prune::prunable_parameters(*resnet, {.exclude_first_and_last = true});
  CHECK(trimmed.size() == names.size() - 2);
  CHECK(trimmed.front() == "layer1.0.conv1.weight");

  auto no_layer1 = prune::prunable_parameters(*resnet, {.exclude = {"layer1\\..*"}});
  CHECK(no_layer1.size() == names.size() - 6);
  auto with_bn = prune::prunable_parameters(*resnet, {.include = {"bn1\\.weight"}, .exclude = {"fc\\.weight"}});
  CHECK(with_bn.size() == names.size());  // + bn1.weight − fc.weight
  CHECK(with_bn[1] == "bn1.weight");

  CHECK_THROWS_AS(prune::prunable_parameters(*resnet, {.include = {"nothing\\.here"}}), Error);
  CHECK_THROWS_AS(prune::prunable_parameters(*resnet, {.exclude = {"(unclosed"}}), Error);
}

TEST_CASE("masks_from_scores prunes exactly floor(s·d), ties by position, caps per layer", "[prune]") {
  prune::NamedTensors scores{{"a", Tensor::from_vector({3}, {1, 1, 1})}, {"b", Tensor::from_vector({2}, {1, 1})}};
  auto m = prune::masks_from_scores(scores, {.sparsity = 0.4});
  CHECK(m[0].second.to_vector() == std::vector<float>{0, 0, 1});  // the two earliest ties go
  CHECK(m[1].second.to_vector() == std::vector<float>{1, 1});

  prune::NamedTensors s2{{"a", Tensor::from_vector({4}, {0.1f, 0.2f, 0.3f, 0.4f})},
                         {"b", Tensor::from_vector({4}, {5, 6, 7, 0.05f})}};
  auto global = prune::masks_from_scores(s2, {.sparsity = 0.5});
  CHECK(global[0].second.to_vector() == std::vector<float>{0, 0, 0, 1});
  CHECK(global[1].second.to_vector() == std::vector<float>{1, 1, 1, 0});
  auto capped = prune::masks_from_scores(s2, {.sparsity = 0.5, .max_layer_sparsity = 0.5});
  CHECK(capped[0].second.to_vector() == std::vector<float>{0, 0, 1, 1});
  CHECK(capped[1].second.to_vector() == std::vector<float>{0, 1, 1, 0});
  auto layer = prune::masks_from_scores(s2, {.sparsity = 0.25, .distribution = Distribution::per_layer});
  CHECK(layer[0].second.to_vector() == std::vector<float>{0, 1, 1, 1});
  CHECK(layer[1].second.to_vector() == std::vector<float>{1, 1, 1, 0});
  CHECK_THROWS_AS(prune::masks_from_scores(s2, {.sparsity = 0.9, .max_layer_sparsity = 0.5}), Error);
  CHECK_THROWS_AS(prune::masks_from_scores(s2, {.sparsity = 90}), Error);
  prune::NamedTensors nan{{"a", Tensor::from_vector({1}, {NAN})}};
  CHECK_THROWS_AS(prune::masks_from_scores(nan, {.sparsity = 0.5}), Error);

  auto model = nn::make_model("mlp", tiny_mlp({40, 30}));
  auto names = prune::prunable_parameters(*model);
  for (double s : {0.1, 0.37, 0.5, 0.93}) {
    auto masks = prune::masks_from_scores(prune::magnitude_scores(*model, names), {.sparsity = s});
    int64_t d = 0, z = 0;
    for (auto& [n, t] : masks) d += t.numel(), z += zeros_of(t);
    CHECK(z == prune::prune_count(s, d));
  }
}

TEST_CASE("masked weights stay exactly zero through SGD, Adam and AdamW and checkpoints", "[prune]") {
  struct Case {
    const char* name;
    std::function<std::unique_ptr<optim::Optimizer>(nn::Module&)> make;
  };
  std::vector<Case> cases = {
      {"sgd", [](nn::Module& m) {
         return std::make_unique<optim::Sgd>(optim::decay_groups(m.named_parameters(), 0.1, 0.05, false),
                                             optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05,
                                                               .nesterov = true});
       }},
      {"adam", [](nn::Module& m) {
         return std::make_unique<optim::Adam>(optim::decay_groups(m.named_parameters(), 0.01, 0.05, false),
                                              optim::AdamOptions{.lr = 0.01, .weight_decay = 0.05});
       }},
      {"adamw", [](nn::Module& m) {
         auto o = optim::adamw_defaults();
         return std::make_unique<optim::Adam>(optim::decay_groups(m.named_parameters(), 0.01, 0.05, false), o);
       }},
  };
  for (auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Generator gen(7);
      auto model = nn::make_model("mlp", tiny_mlp(), gen);
      auto names = prune::prunable_parameters(*model);
      auto masks = prune::masks_from_scores(prune::random_scores(*model, names, gen), {.sparsity = 0.6});
      prune::apply_masks(*model, masks);
      auto opt = c.make(*model);
      Batch b = tiny_batch(4, 1, 3, 3, 11);
      for (int step = 0; step < 5; ++step) {
        opt->zero_grad();
        cross_entropy((*model)(b.images), b.labels).backward();
        opt->step();
      }
      for (auto& [n, m] : masks) {
        Tensor w = model->parameter(n);
        for (int64_t i = 0; i < w.numel(); ++i)
          if (m.data()[i] == 0.f) REQUIRE(w.data()[i] == 0.f);
        CHECK(zeros_of(w) == zeros_of(m));  // surviving weights moved off zero
      }
      CHECK(prune::sparsity_report(*model, names).zeros == prune::prune_count(0.6, 9 * 6 + 6 * 5 + 5 * 3));

      // Checkpoint round trips in both mask formats keep the zeros.
      for (auto format : {nn::MaskFormat::orig_and_mask, nn::MaskFormat::dense}) {
        std::string path = "/tmp/shears_test_prune_masks.safetensors";
        model->save_checkpoint(path, {}, format);
        auto back = nn::load_model(path);
        std::remove(path.c_str());
        CHECK(back->named_masks().size() == (format == nn::MaskFormat::dense ? 0u : masks.size()));
        CHECK(prune::sparsity_report(*back, names).zeros == prune::sparsity_report(*model, names).zeros);
      }
    }
  }
}

TEST_CASE("enforce_masks re-zeroes raw values written behind the mask", "[prune]") {
  nn::Linear fc(3, 2);
  prune::apply_masks(fc, {{"weight", Tensor::from_vector({2, 3}, {1, 0, 1, 0, 1, 1})}});
  fc.parameter("weight").fill_(5.f);
  prune::enforce_masks(fc);
  CHECK(fc.parameter("weight").to_vector() == std::vector<float>{5, 0, 5, 0, 5, 5});
}

TEST_CASE("magnitude and random scores: |θ|, seeded, pruned entries stay pruned", "[prune]") {
  nn::Linear fc(3, 2, false);
  fc.parameter("weight").copy_(Tensor::from_vector({2, 3}, {-3, 1, -0.5f, 2, 0.25f, -4}));
  auto s = prune::magnitude_scores(fc, {"weight"});
  CHECK(s[0].second.to_vector() == std::vector<float>{3, 1, 0.5f, 2, 0.25f, 4});
  auto m = prune::masks_from_scores(s, {.sparsity = 0.5});
  CHECK(m[0].second.to_vector() == std::vector<float>{1, 0, 0, 1, 0, 1});

  Generator g1(3), g2(3), g3(4);
  auto r1 = prune::random_scores(fc, {"weight"}, g1), r2 = prune::random_scores(fc, {"weight"}, g2),
       r3 = prune::random_scores(fc, {"weight"}, g3);
  CHECK(r1[0].second.to_vector() == r2[0].second.to_vector());
  CHECK(r1[0].second.to_vector() != r3[0].second.to_vector());

  prune::apply_masks(fc, m);
  fc.parameter("weight").copy_(Tensor::from_vector({2, 3}, {-3, 9, 9, 2, 9, -4}));  // raw values behind the mask
  auto again = prune::masks_from_scores(prune::magnitude_scores(fc, {"weight"}), {.sparsity = 0.5});
  CHECK(again[0].second.to_vector() == m[0].second.to_vector());
}

namespace {

// One sample through a bias-free Linear(2→2): p = softmax(Wx / T), ∂L/∂W = (p − e_y) xᵀ / T.
struct TinySoftmax {
  std::vector<float> W{0.5f, -1.f, 2.f, 0.25f}, x{1.5f, -0.5f};
  int64_t y = 1;
  std::vector<double> p(double T) const {
    double z0 = (W[0] * x[0] + W[1] * x[1]) / T, z1 = (W[2] * x[0] + W[3] * x[1]) / T;
    double m = std::max(z0, z1), e0 = std::exp(z0 - m), e1 = std::exp(z1 - m);
    return {e0 / (e0 + e1), e1 / (e0 + e1)};
  }
  std::vector<double> grad(double T) const {
    auto q = p(T);
    std::vector<double> g(4);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) g[i * 2 + j] = (q[i] - (i == y)) * x[j] / T;
    return g;
  }
  nn::Linear layer() const {
    nn::Linear fc(2, 2, false);
    fc.parameter("weight").copy_(Tensor::from_vector({2, 2}, W));
    return fc;
  }
  Batch batch() const { return {Tensor::from_vector({1, 2}, x), {y}, {0}}; }
};

}  // namespace

TEST_CASE("SNIP scores equal |g ⊙ w| on a hand-computed softmax layer", "[prune]") {
  TinySoftmax t;
  nn::Linear fc = t.layer();
  auto s = prune::snip_scores(fc, {"weight"}, {t.batch(), t.batch()});  // two batches: gradients summed
  auto g = t.grad(1.0);
  for (int i = 0; i < 4; ++i) CHECK(s[0].second.data()[i] == Approx(std::abs(2 * g[i] * t.W[i])).epsilon(1e-5));
  CHECK_FALSE(fc.parameter("weight").grad().defined());  // the model itself is untouched
}

TEST_CASE("GraSP scores equal θ ⊙ Hg on a hand-computed softmax layer", "[prune]") {
  TinySoftmax t;
  nn::Linear fc = t.layer();
  double T = 2.0;
  auto s = prune::grasp_scores(fc, {"weight"}, {t.batch()}, static_cast<float>(T));
  // H·G for L(W) = CE(Wx / T): (1/T²)(diag(p) − ppᵀ)(G x) xᵀ.
  auto p = t.p(T);
  auto g = t.grad(T);
  double gx[2] = {g[0] * t.x[0] + g[1] * t.x[1], g[2] * t.x[0] + g[3] * t.x[1]};
  double a[2] = {p[0] * gx[0] - p[0] * (p[0] * gx[0] + p[1] * gx[1]), p[1] * gx[1] - p[1] * (p[0] * gx[0] + p[1] * gx[1])};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      double hg = a[i] * t.x[j] / (T * T);
      CHECK(s[0].second.data()[i * 2 + j] == Approx(t.W[i * 2 + j] * hg).epsilon(2e-2).margin(1e-7));
    }
}

TEST_CASE("SynFlow: every layer's scores sum to R (conservation), exact and deterministic masks", "[prune]") {
  Generator gen(5);
  auto model = nn::make_model("mlp", tiny_mlp({7, 5}, false), gen);
  auto names = prune::prunable_parameters(*model);
  Shape input{1, 1, 3, 3};
  auto scores = prune::synflow_scores(*model, names, input);
  // R = Σ |W3| |W2| |W1| 1.
  auto abs_model = model->clone();
  for (auto& [n, p] : abs_model->named_parameters())
    for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] = std::abs(p.data()[i]);
  abs_model->eval();
  double R = sum((*abs_model)(Tensor::ones(input))).item();
  for (auto& [n, s] : scores) CHECK(sum(s).item() == Approx(R).epsilon(1e-4));

  SparsityTarget target{.sparsity = 0.8};
  auto m1 = prune::synflow_masks(*model, names, input, target, {.rounds = 10});
  auto m2 = prune::synflow_masks(*model, names, input, target, {.rounds = 10});
  int64_t zeros = 0;
  for (size_t l = 0; l < m1.size(); ++l) {
    zeros += zeros_of(m1[l].second);
    CHECK(m1[l].second.to_vector() == m2[l].second.to_vector());
    CHECK(zeros_of(m1[l].second) < m1[l].second.numel());  // SynFlow avoids layer collapse here
  }
  CHECK(zeros == prune::prune_count(0.8, 9 * 7 + 7 * 5 + 5 * 3));
  CHECK(model->named_masks().empty());
}
