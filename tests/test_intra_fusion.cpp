// prune/bn_fold and prune/intra_fusion: docs/algorithms/baselines.md#bn-folding and the properties listed in
// docs/algorithms/intra-fusion.md#properties-the-tests-check.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "prune/algorithms/intra_fusion.hpp"
#include "prune/bn_fold.hpp"
#include "prune/structured.hpp"

using namespace shears;
using prune::Role;

namespace {

Tensor eval_forward(nn::Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.eval();
  return model(x);
}

// Non-trivial running statistics and affine parameters for every BatchNorm of `model`.
void randomise_batch_norms(nn::Module& model, uint64_t seed) {
  Generator gen(seed);
  for (auto& [path, m] : model.named_modules()) {
    if (!dynamic_cast<nn::BatchNorm*>(m)) continue;
    for (auto [name, low, high] : {std::tuple{"running_mean", -0.5f, 0.5f}, {"running_var", 0.5f, 2.f}}) {
      Tensor t = m->buffer(name);
      Tensor r = Tensor::rand(t.shape(), low, high, gen);
      std::memcpy(t.data(), r.data(), sizeof(float) * t.numel());
    }
    for (auto [name, low, high] : {std::tuple{"weight", 0.5f, 1.5f}, {"bias", -0.3f, 0.3f}}) {
      Tensor t = m->parameter(name);
      Tensor r = Tensor::rand(t.shape(), low, high, gen);
      std::memcpy(t.data(), r.data(), sizeof(float) * t.numel());
    }
  }
}

// conv → BN → ReLU → depthwise conv → BN → ReLU → flatten → linear → BN1d → ReLU → linear, and a
// BatchNorm after a ReLU (not foldable).
std::shared_ptr<nn::Sequential> small_cnn() {
  Generator gen(3);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(2, 4, 3, nn::Conv2dConfig{.padding = 1, .bias = false}, gen),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(4, 4, 3, nn::Conv2dConfig{.padding = 1, .groups = 4}, gen),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(4 * 6 * 6, 6, true, gen), std::make_shared<nn::BatchNorm1d>(6),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::BatchNorm1d>(6), std::make_shared<nn::Linear>(6, 3, true, gen)});
}

bool bitwise_equal(const nn::NamedTensors& a, const nn::NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || a[i].second.shape() != b[i].second.shape() ||
        std::memcmp(a[i].second.data(), b[i].second.data(), sizeof(float) * a[i].second.numel()) != 0)
      return false;
  return true;
}

bool same_model(const nn::Module& a, const nn::Module& b) {
  return bitwise_equal(a.named_parameters(), b.named_parameters()) && bitwise_equal(a.named_buffers(), b.named_buffers());
}

struct ZooCase {
  const char* name;
  nn::ModelOptions options;
};

std::vector<ZooCase> zoo() {
  return {{"vgg11_bn", {.in_channels = 1, .input_size = 16, .widths = {8, 8, 8, 8, 8, 8, 8, 8}}},
          {"resnet20", {.input_size = 8}},
          {"mobilenet_v1", {.input_size = 8, .width_multiplier = 0.25f}}};
}

Shape input_of(const nn::ModelOptions& o) { return {2, o.in_channels, o.input_size, o.input_size}; }

}  // namespace

TEST_CASE("BN folding preserves eval outputs and leaves identity BatchNorms", "[bn_fold]") {
  auto model = small_cnn();
  randomise_batch_norms(*model, 4);
  Tensor x = test::random_tensor({3, 2, 6, 6}, 5);
  Tensor before = eval_forward(*model, x);
  auto folded = prune::fold_batch_norms(*model, {1, 2, 6, 6});
  REQUIRE(folded.size() == 3);
  CHECK(folded[0].producer == "0");
  CHECK(folded[0].norm == "1");
  CHECK(folded[1].producer == "3");
  CHECK(folded[2].norm == "8");
  CHECK(model->has_parameter("0.bias"));  // the bias-free conv got a bias
  for (const char* bn : {"1", "4", "8"}) {
    for (int64_t c = 0; c < 4; ++c) {
      CHECK(model->buffer(std::string(bn) + ".running_mean").data()[c] == 0.f);
      CHECK(model->parameter(std::string(bn) + ".weight").data()[c] == 1.f);
    }
  }
  CHECK(model->buffer("10.running_mean").data()[0] != 0.f);  // after a ReLU: not folded
  test::require_close(eval_forward(*model, x), before, 1e-5, 1e-4);
  CHECK_THROWS_AS(prune::fold_batch_norm(*model, "2", "4"), Error);
}

TEST_CASE("BN folding preserves the outputs of zoo models", "[bn_fold]") {
  for (const ZooCase& c : zoo()) {
    INFO(c.name);
    auto model = nn::make_model(c.name, c.options);
    randomise_batch_norms(*model, 6);
    Tensor x = test::random_tensor(input_of(c.options), 7);
    Tensor before = eval_forward(*model, x);
    CHECK(!prune::fold_batch_norms(*model, input_of(c.options)).empty());
    test::require_close(eval_forward(*model, x), before, 1e-5, 1e-4);
  }
}

TEST_CASE("BN folding, undone architecturally: the original parameter names, the same outputs", "[bn_fold]") {
  for (const ZooCase& c : zoo()) {
    INFO(c.name);
    auto model = nn::make_model(c.name, c.options);
    randomise_batch_norms(*model, 8);
    std::vector<std::string> names;
    for (const auto& [name, t] : model->named_parameters()) names.push_back(name);
    Tensor x = test::random_tensor(input_of(c.options), 9);
    Tensor before = eval_forward(*model, x);
    auto folded = prune::fold_batch_norms(*model, input_of(c.options));
    const bool biases_added = std::any_of(folded.begin(), folded.end(), [](const auto& p) { return p.added_bias; });
    CHECK(biases_added == (std::string(c.name) != "vgg11_bn"));  // torchvision's VGG convs have biases
    prune::restore_bias_free_producers(*model, folded);
    std::vector<std::string> after;
    for (const auto& [name, t] : model->named_parameters()) after.push_back(name);
    CHECK(after == names);
    test::require_close(eval_forward(*model, x), before, 1e-5, 1e-4);
  }
}

TEST_CASE("intra-fusion: the selection matrix is plain pruning, bitwise", "[intra_fusion]") {
  auto model = small_cnn();
  randomise_batch_norms(*model, 8);
  auto groups = prune::dependency_groups(*model, {1, 2, 6, 6});
  REQUIRE(groups.size() == 2);
  for (const auto& g : groups) {
    std::vector<int64_t> kept{0, 2}, pruned;
    for (int64_t c = 0; c < g.channels; ++c)
      if (c != 0 && c != 2) pruned.push_back(c);
    auto fused = model->clone(), plain = model->clone();
    prune::ot::Matrix s = prune::selection_matrix(g.channels, kept);
    prune::apply_fusion(*fused, g, kept, s, s);
    prune::remove_channels(*plain, g, pruned);
    CHECK(same_model(*fused, *plain));
  }
}

TEST_CASE("intra-fusion: plan marginals, sparsity, zero self-cost and normalisations", "[intra_fusion]") {
  auto model = nn::make_model("vgg11_bn", zoo()[0].options);
  randomise_batch_norms(*model, 9);
  prune::fold_batch_norms(*model, input_of(zoo()[0].options));
  auto groups = prune::dependency_groups(*model, input_of(zoo()[0].options));
  const prune::Group& g = groups[2];
  const int64_t n = g.channels;
  for (auto mass : {prune::FusionMass::uniform, prune::FusionMass::importance, prune::FusionMass::radical}) {
    for (double s : {0.3, 0.5, 0.7}) {
      prune::IntraFusionOptions o;
      o.source_mass = o.target_mass = mass;
      o.normalization = prune::FusionNormalization::function_preserving;
      auto plan = prune::plan_fusion(*model, g, s, o);
      const int64_t k = static_cast<int64_t>(plan.kept.size());
      REQUIRE(k == static_cast<int64_t>(std::floor(n * (1 - s))));
      auto rows = plan.transport.row_sums(), cols = plan.transport.col_sums();
      double total = 0.0;
      for (double v : plan.transport.values) {
        CHECK(v >= 0.0);
        total += v;
      }
      CHECK(total == Approx(1.0).epsilon(1e-12));
      CHECK(std::count_if(plan.transport.values.begin(), plan.transport.values.end(), [](double v) { return v > 0; }) <=
            n + k - 1);
      // Code normalisation (the consumer matrix): unit column sums, row q sums to N·β_q.
      auto tc_cols = plan.consumer.col_sums(), tc_rows = plan.consumer.row_sums(), tp_rows = plan.producer.row_sums();
      for (int64_t j = 0; j < n; ++j) CHECK(tc_cols[j] == Approx(1.0).epsilon(1e-12));
      for (int64_t q = 0; q < k; ++q) {
        if (mass == prune::FusionMass::uniform) CHECK(tc_rows[q] == Approx(double(n) / double(k)).epsilon(1e-9));
        CHECK(tp_rows[q] == Approx(1.0).epsilon(1e-12));
      }
      if (mass != prune::FusionMass::uniform) continue;
      for (int64_t j = 0; j < n; ++j) CHECK(std::abs(rows[j] - 1.0 / n) < 1e-9);
      for (int64_t q = 0; q < k; ++q) CHECK(std::abs(cols[q] - 1.0 / k) < 1e-9);
      // Zero self-cost: keep each kept channel's mass on itself and send the pruned channels
      // optimally into the remaining capacity; that plan is optimal too.
      std::vector<int64_t> pruned;
      for (int64_t c = 0; c < n; ++c)
        if (!std::binary_search(plan.kept.begin(), plan.kept.end(), c)) pruned.push_back(c);
      prune::ot::Matrix rest(static_cast<int64_t>(pruned.size()), k);
      for (size_t r = 0; r < pruned.size(); ++r)
        for (int64_t q = 0; q < k; ++q) rest(static_cast<int64_t>(r), q) = plan.cost(pruned[r], q);
      auto residual = prune::ot::emd(std::vector<double>(pruned.size(), 1.0 / n),
                                     std::vector<double>(k, 1.0 / k - 1.0 / n), rest);
      for (int64_t q = 0; q < k; ++q) CHECK(plan.cost(plan.kept[q], q) == 0.0);
      CHECK(prune::ot::transport_cost(plan.transport, plan.cost) ==
            Approx(prune::ot::transport_cost(residual, rest)).margin(1e-12));
    }
  }
}

TEST_CASE("intra-fusion: duplicate channels are preserved (function_preserving) or scaled by N/K (code)",
          "[intra_fusion]") {
  for (auto norm : {prune::FusionNormalization::function_preserving, prune::FusionNormalization::code}) {
    const bool bias = norm == prune::FusionNormalization::function_preserving;  // code: bias-free ReLU block
    Generator gen(10);
    auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(5, 8, bias, gen), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(8, 3, bias, gen)});
    // Hidden channels 4..7 duplicate 0..3 in the producer rows (and biases) and consumer columns.
    Tensor w1 = model->parameter("0.weight"), w2 = model->parameter("2.weight");
    for (int64_t c = 4; c < 8; ++c) {
      for (int64_t i = 0; i < 5; ++i) w1.data()[c * 5 + i] = w1.data()[(c - 4) * 5 + i];
      for (int64_t o = 0; o < 3; ++o) w2.data()[o * 8 + c] = w2.data()[o * 8 + c - 4];
      if (bias) model->parameter("0.bias").data()[c] = model->parameter("0.bias").data()[c - 4];
    }
    Tensor x = test::random_tensor({4, 5}, 11);
    Tensor before = eval_forward(*model, x);
    auto groups = prune::dependency_groups(*model, {1, 5});
    REQUIRE(groups.size() == 1);
    prune::IntraFusionOptions o;
    o.normalization = norm;
    // The originals outrank their copies, so the copies are the pruned channels.
    o.importance = [](const nn::Module&, const prune::Group&) {
      return std::vector<float>{1.f, 1.f, 1.f, 1.f, .5f, .5f, .5f, .5f};
    };
    auto plan = prune::plan_fusion(*model, groups[0], 0.5, o);
    CHECK(plan.kept == std::vector<int64_t>{0, 1, 2, 3});
    prune::apply_fusion(*model, groups[0], plan.kept, plan.producer, plan.consumer);
    CHECK(model->parameter("0.weight").shape() == Shape{4, 5});
    CHECK(model->parameter("2.weight").shape() == Shape{3, 4});
    Tensor after = eval_forward(*model, x);
    if (bias) test::require_close(after, before, 1e-5, 1e-4);
    else test::require_close(after, mul(before, Tensor::scalar(2.f)), 1e-5, 1e-4);
  }
}

TEST_CASE("intra-fusion: sparsity 0 leaves the model unchanged", "[intra_fusion]") {
  auto model = small_cnn();
  randomise_batch_norms(*model, 12);
  prune::fold_batch_norms(*model, {1, 2, 6, 6});
  auto copy = model->clone();
  for (const auto& g : prune::dependency_groups(*model, {1, 2, 6, 6})) {
    auto plan = prune::plan_fusion(*model, g, 0.0, {});
    CHECK(static_cast<int64_t>(plan.kept.size()) == g.channels);
    for (int64_t q = 0; q < g.channels; ++q)
      for (int64_t j = 0; j < g.channels; ++j) CHECK(plan.producer(q, j) == (q == j ? 1.0 : 0.0));
    prune::apply_fusion(*model, g, plan.kept, plan.producer, plan.consumer);
  }
  CHECK(same_model(*model, *copy));
}

TEST_CASE("intra-fusion: every group of zoo models shrinks consistently and still runs", "[intra_fusion]") {
  for (const ZooCase& c : zoo()) {
    auto probe = nn::make_model(c.name, c.options);
    const int64_t count = static_cast<int64_t>(prune::dependency_groups(*probe, input_of(c.options)).size());
    for (int64_t gi = 0; gi < count; ++gi) {
      INFO(c.name << " group " << gi);
      auto model = nn::make_model(c.name, c.options);
      randomise_batch_norms(*model, 13);
      auto groups = prune::dependency_groups(*model, input_of(c.options));
      const prune::Group& g = groups[groups.size() - 1 - static_cast<size_t>(gi)];
      auto plan = prune::intra_fusion_prune(*model, input_of(c.options), gi, 0.5);
      const int64_t k = static_cast<int64_t>(plan.kept.size());
      CHECK(k == g.channels / 2);
      for (const auto& m : g.members)
        for (const auto& s : m.slices) {
          Tensor t = s.buffer ? model->buffer(s.tensor) : model->parameter(s.tensor);
          CHECK(t.size(s.dim) == k * s.span);
        }
      Tensor y = eval_forward(*model, test::random_tensor(input_of(c.options), 14));
      CHECK(y.shape() == Shape{2, 10});
    }
  }
}

namespace {

// Three-class data: a ring, an inner disc and an outer band in 2-D, lifted to 8-D by a fixed
// random linear map plus noise.
void ring_data(int64_t n, uint64_t seed, Tensor& x, std::vector<int64_t>& y) {
  Generator gen(seed), lift(99);
  Tensor map = Tensor::randn({2, 8}, lift);
  x = Tensor::empty({n, 8});
  y.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    y[i] = i % 3;
    float r = 0.5f + static_cast<float>(y[i]) + gen.uniform() * 0.6f, a = gen.uniform() * 6.2832f;
    float p[2] = {r * std::cos(a), r * std::sin(a)};
    for (int64_t d = 0; d < 8; ++d)
      x.data()[i * 8 + d] = p[0] * map.data()[d] + p[1] * map.data()[8 + d] + 0.05f * (gen.uniform() - 0.5f);
  }
}

double accuracy(nn::Module& model, const Tensor& x, const std::vector<int64_t>& y) {
  Tensor logits = eval_forward(model, x);
  Tensor pred = max(logits, 1);
  int64_t correct = 0;
  for (int64_t i = 0; i < logits.size(0); ++i) correct += logits.data()[i * logits.size(1) + y[i]] == pred.data()[i];
  return static_cast<double>(correct) / static_cast<double>(logits.size(0));
}

}  // namespace

TEST_CASE("intra-fusion recovers more accuracy than plain pruning on a trained MLP", "[intra_fusion]") {
  Tensor x, xt;
  std::vector<int64_t> y, yt;
  ring_data(600, 1, x, y);
  ring_data(600, 2, xt, yt);
  double plain_sum = 0.0, fused_sum = 0.0;
  for (uint64_t seed : {1, 2, 3}) {
    Generator gen(seed);
    auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(8, 48, true, gen), std::make_shared<nn::BatchNorm1d>(48),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(48, 3, true, gen)});
    for (int step = 0; step < 300; ++step) {
      model->train();
      Tensor loss = cross_entropy((*model)(x), y);
      loss.backward();
      NoGradGuard no_grad;
      for (Tensor p : model->parameters()) {
        for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] -= 0.2f * p.grad().data()[i];
        p.zero_grad();
      }
    }
    double dense = accuracy(*model, xt, yt);
    INFO("seed " << seed << " dense " << dense);
    REQUIRE(dense > 0.9);
    prune::fold_batch_norms(*model, {1, 8});
    auto groups = prune::dependency_groups(*model, {1, 8});
    REQUIRE(groups.size() == 1);
    auto plan = prune::plan_fusion(*model, groups[0], 0.8, {});
    auto plain = model->clone();
    prune::ot::Matrix s = prune::selection_matrix(groups[0].channels, plan.kept);
    prune::apply_fusion(*plain, groups[0], plan.kept, s, s);
    prune::apply_fusion(*model, groups[0], plan.kept, plan.producer, plan.consumer);
    double p = accuracy(*plain, xt, yt), f = accuracy(*model, xt, yt);
    INFO("plain " << p << " fused " << f);
    CHECK(f >= p);
    plain_sum += p;
    fused_sum += f;
  }
  CHECK(fused_sum / 3 >= plain_sum / 3 + 0.1);  // measured here: about 0.67 against 0.34
}

TEST_CASE("LAMP importance: a group's largest channel scores 1 and the l2 order is kept", "[importance]") {
  auto model = nn::make_model("vgg11_bn", zoo()[0].options);
  for (const auto& g : prune::dependency_groups(*model, input_of(zoo()[0].options))) {
    std::vector<float> l2 = prune::magnitude_importance(2)(*model, g), lamp = prune::lamp_importance()(*model, g);
    REQUIRE(lamp.size() == l2.size());
    // Direct definition: each score over the sum of all scores at least as large.
    for (size_t i = 0; i < l2.size(); ++i) {
      double larger = 0.0;
      for (float v : l2) larger += v >= l2[i] ? v : 0.f;
      CHECK(lamp[i] == Approx(l2[i] / larger).epsilon(1e-5));
      for (size_t j = 0; j < l2.size(); ++j)
        if (l2[i] < l2[j]) CHECK(lamp[i] <= lamp[j]);
    }
    CHECK(*std::max_element(lamp.begin(), lamp.end()) == Approx(1.0));
  }
}

TEST_CASE("intra-fusion over the whole network: selection equals plain removal on the folded model, bitwise",
          "[intra_fusion]") {
  for (const ZooCase& c : zoo())
    for (auto distribution : {prune::Distribution::per_layer, prune::Distribution::global}) {
      INFO(c.name << (distribution == prune::Distribution::global ? " global" : " per-layer"));
      auto plain = nn::make_model(c.name, c.options);
      randomise_batch_norms(*plain, 21);
      auto fused = plain->clone();
      prune::ChannelTarget target{.ratio = 0.4, .distribution = distribution};
      auto folded = prune::fold_batch_norms(*plain, input_of(c.options));
      auto removed = prune::prune_channels(*plain, input_of(c.options), prune::magnitude_importance(1), target).removed;
      prune::restore_bias_free_producers(*plain, folded);
      prune::IntraFusionOptions select;
      select.merge = prune::ChannelMerge::select;
      auto result = prune::intra_fusion_prune_network(*fused, input_of(c.options), target, select);
      CHECK(result.removed == removed);
      CHECK(same_model(*plain, *fused));
    }
}

TEST_CASE("intra-fusion over the whole network shrinks every group, runs, and reloads", "[intra_fusion]") {
  for (const ZooCase& c : zoo()) {
    INFO(c.name);
    auto model = nn::make_model(c.name, c.options);
    randomise_batch_norms(*model, 22);
    const int64_t params_before = model->num_parameters();
    auto result = prune::intra_fusion_prune_network(*model, input_of(c.options), {.ratio = 0.5});
    REQUIRE(!result.groups.empty());
    for (size_t g = 0; g < result.groups.size(); ++g) {
      const int64_t kept = result.groups[g].channels - static_cast<int64_t>(result.removed[g].size());
      CHECK(kept == result.groups[g].channels - result.groups[g].channels / 2);
      for (const auto& m : result.groups[g].members)
        for (const auto& s : m.slices) {
          if (!s.buffer && !model->has_parameter(s.tensor)) continue;  // a folding bias, removed again
          Tensor t = s.buffer ? model->buffer(s.tensor) : model->parameter(s.tensor);
          CHECK(t.size(s.dim) == kept * s.span);
        }
    }
    CHECK(model->num_parameters() < params_before);
    Tensor x = test::random_tensor(input_of(c.options), 23);
    Tensor y = eval_forward(*model, x);
    REQUIRE(y.shape() == Shape{2, 10});
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(std::isfinite(y.data()[i]));
    test::TempDir dir;
    std::string file = dir.file("fused.safetensors");
    model->save_checkpoint(file);
    auto reloaded = nn::load_model(file);
    CHECK(same_model(*model, *reloaded));
    Tensor z = eval_forward(*reloaded, x);
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(z.data()[i] == y.data()[i]);
  }
}

TEST_CASE("intra-fusion: dimensionality preserving computes the smaller network's function at full width",
          "[intra_fusion]") {
  for (const ZooCase& c : zoo()) {
    INFO(c.name);
    auto cut = nn::make_model(c.name, c.options);
    randomise_batch_norms(*cut, 24);
    prune::fold_batch_norms(*cut, input_of(c.options));  // shapes below compare with the folded model
    auto kept_width = cut->clone();
    prune::IntraFusionOptions options;
    options.normalization = prune::FusionNormalization::function_preserving;
    prune::intra_fusion_prune_network(*cut, input_of(c.options), {.ratio = 0.5}, options);
    options.preserve_dimensions = true;
    Shape before;
    for (const auto& [name, t] : kept_width->named_parameters()) before.push_back(t.numel());
    prune::intra_fusion_prune_network(*kept_width, input_of(c.options), {.ratio = 0.5}, options);
    Shape after;
    for (const auto& [name, t] : kept_width->named_parameters()) after.push_back(t.numel());
    CHECK(after == before);
    Tensor x = test::random_tensor(input_of(c.options), 25);
    Tensor a = eval_forward(*cut, x), b = eval_forward(*kept_width, x);
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) CHECK(b.data()[i] == Approx(a.data()[i]).margin(1e-4).epsilon(1e-4));
  }
}
