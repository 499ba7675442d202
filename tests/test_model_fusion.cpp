// prune/model_fusion: cross-model OT fusion (OTFusion) for Split-Data. The defining property: a
// model fused with a channel-permuted copy of itself is the model again, which naive averaging
// is not.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <random>
#include <tuple>

#include "core/autograd.hpp"
#include "data/loader.hpp"
#include "data/synthetic.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "pipeline/split_data.hpp"
#include "prune/algorithms/model_fusion.hpp"
#include "prune/bn_recalibrate.hpp"

using namespace shears;

namespace {

Tensor eval_forward(nn::Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.eval();
  return model(x);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a.data()[i] - b.data()[i])));
  return worst;
}

// Every BatchNorm gets distinct running statistics and affine parameters, so a wrong channel map
// shows in the output.
void randomise_batch_norms(nn::Module& model, uint64_t seed) {
  Generator gen(seed);
  for (auto& [path, m] : model.named_modules()) {
    if (!dynamic_cast<nn::BatchNorm*>(m)) continue;
    for (auto [name, low, high, buffer] : {std::tuple{"running_mean", -0.5f, 0.5f, true}, {"running_var", 0.5f, 2.f, true},
                                           {"weight", 0.5f, 1.5f, false}, {"bias", -0.3f, 0.3f, false}}) {
      Tensor t = buffer ? m->buffer(name) : m->parameter(name);
      Tensor r = Tensor::rand(t.shape(), low, high, gen);
      std::memcpy(t.data(), r.data(), sizeof(float) * t.numel());
    }
  }
}

// A copy of `model` with the channels of every dependency group shuffled.
std::shared_ptr<nn::Module> permuted_copy(nn::Module& model, const Shape& input_shape, uint64_t seed) {
  std::shared_ptr<nn::Module> copy = model.clone();
  std::mt19937_64 rng(seed);
  for (const prune::Group& g : prune::dependency_groups(*copy, input_shape)) {
    std::vector<int64_t> perm(static_cast<size_t>(g.channels));
    std::iota(perm.begin(), perm.end(), int64_t{0});
    std::shuffle(perm.begin(), perm.end(), rng);
    prune::ot::Matrix map(g.channels, g.channels);
    for (int64_t j = 0; j < g.channels; ++j) map(j, perm[j]) = 1.0;
    prune::map_channels(*copy, g, map);
  }
  return copy;
}

}  // namespace

TEST_CASE("OT fusion of a model with a channel-permuted copy recovers the model; naive averaging does not", "[model_fusion]") {
  struct Case {
    const char* name;
    nn::ModelOptions options;
  };
  nn::ModelOptions mlp_bn{.in_channels = 1, .input_size = 28, .bias = true, .batch_norm = true};
  nn::ModelOptions cifar{.in_channels = 3, .input_size = 32};
  nn::ModelOptions mobile{.in_channels = 3, .input_size = 32, .width_multiplier = 0.25f};
  nn::ModelOptions narrow_vgg{.in_channels = 3, .input_size = 32, .widths = {8, 16, 16, 16, 32, 32, 32, 32}};
  for (const Case& c :
       {Case{"mlpnet", mlp_bn}, Case{"resnet20", cifar}, Case{"mobilenet_v1", mobile}, Case{"vgg11_bn", narrow_vgg}}) {
    SECTION(c.name) {
      Generator gen(11);
      std::shared_ptr<nn::Module> model = nn::make_model(c.name, c.options, gen);
      randomise_batch_norms(*model, 5);
      const Shape one{1, c.options.in_channels, c.options.input_size, c.options.input_size};
      Tensor x = test::random_tensor({2, c.options.in_channels, c.options.input_size, c.options.input_size}, 9);
      Tensor expected = eval_forward(*model, x);

      std::shared_ptr<nn::Module> shuffled = permuted_copy(*model, one, 21);
      // Permuting a group's channels everywhere keeps the function but not the weights.
      CHECK(max_abs_diff(eval_forward(*shuffled, x), expected) < 1e-4);
      CHECK(max_abs_diff(shuffled->named_parameters()[0].second, model->named_parameters()[0].second) > 1e-3);

      auto fused = prune::fuse_models({model, shuffled}, one);
      for (const auto& [name, t] : model->named_parameters()) {
        INFO(name);
        test::require_close(fused->parameter(name), t, 1e-6, 1e-5);
      }
      CHECK(max_abs_diff(eval_forward(*fused, x), expected) < 1e-4);

      auto naive = prune::fuse_models({model, shuffled}, one, {.align = false});
      CHECK(max_abs_diff(eval_forward(*naive, x), expected) > 1e-2);
    }
  }
}

TEST_CASE("model fusion averages K aligned models and refuses different architectures", "[model_fusion]") {
  nn::ModelOptions o{.in_channels = 1, .input_size = 28};
  Generator g1(1), g2(2);
  auto a = nn::make_model("mlpnet", o, g1), b = nn::make_model("mlpnet", o, g2);
  const Shape one{1, 1, 28, 28};
  // Three models: the mean of a and two permuted copies of b aligned to a.
  auto fused = prune::fuse_models({a, permuted_copy(*b, one, 3), permuted_copy(*b, one, 4)}, one);
  // The copies align to the same channel order, so the result is (a + 2·aligned b) / 3, and
  // aligning b alone gives the same aligned b.
  auto aligned_b = b->clone();
  std::vector<prune::ot::Matrix> maps = prune::align_channels(*aligned_b, *a, one);
  CHECK(maps.size() == 2);  // fc1 → fc2 and fc2 → fc3 (the input and the logits are never mapped)
  for (const auto& [name, t] : a->named_parameters()) {
    INFO(name);
    Tensor want = Tensor::empty(t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) want.data()[i] = (t.data()[i] + 2 * aligned_b->parameter(name).data()[i]) / 3;
    test::require_close(fused->parameter(name), want, 1e-6, 1e-5);
  }
  nn::ModelOptions wide = o;
  wide.widths = {50, 20};
  auto c = nn::make_model("mlpnet", wide, g1);
  CHECK_THROWS_WITH(prune::fuse_models({a, c}, one), Catch::Contains("must share an architecture"));
}

// Split-Data (pipeline/split_data.hpp): a fused BatchNorm network keeps running statistics that
// belong to neither parent, so every combination re-estimates them on the same training batches.
TEST_CASE("split-data re-estimates each combination's BatchNorm statistics on training batches", "[model_fusion]") {
  const data::TrainTest splits =
      data::make_synthetic({.train_size = 256, .test_size = 64, .image_shape = {1, 8, 8}, .num_classes = 4});
  const data::OpenedData d{
      .splits =
          {.name = "synthetic", .train = splits.train, .val = nullptr, .test = splits.test, .mean = {}, .std = {}},
      .channels = 1,
      .input_size = 8,
      .num_classes = 4,
      .train_transform = {},
      .test_transform = {},
      .contract = {}};
  nn::ModelOptions mo{.in_channels = 1, .num_classes = 4, .input_size = 8};
  mo.widths = {16, 8};
  mo.batch_norm = true;
  std::vector<std::shared_ptr<nn::Module>> parts;
  for (uint64_t seed : {1, 2}) {
    Generator g(seed);
    parts.push_back(nn::make_model("mlp", mo, g));
    parts.back()->train(true);
    NoGradGuard no_grad;
    (*parts.back())(test::random_tensor({32, 1, 8, 8}, seed, -2.f, 3.f * static_cast<float>(seed)));  // own statistics
  }
  const auto folder = std::filesystem::temp_directory_path() / "shears-test-split-bn";
  pipeline::SplitDataOptions o;
  o.bn_batches = 3;
  o.finetune.batch_size = 32;
  o.seed = 7;
  o.workers = 1;
  for (int64_t bn_batches : {3, 0}) {
    INFO("bn_batches " << bn_batches);
    o.bn_batches = bn_batches;
    std::filesystem::remove_all(folder);
    std::filesystem::create_directories(folder);
    const std::vector<pipeline::SplitDataRow> rows = pipeline::combine_split_parts(parts, {0, 0}, d, folder, o);
    REQUIRE(rows.size() == 6);
    for (size_t r = 2; r < rows.size(); ++r) CHECK(rows[r].recalibrated.has_value() == (bn_batches > 0));
    auto expected = prune::fuse_models(parts, {1, 1, 8, 8}, {.align = false});
    if (bn_batches > 0) {
      BatchSource source = data::batch_factory(d.splits.train, {})({32, o.seed + 1, false, 1, "test"});
      std::vector<Batch> batches;
      for (int i = 0; i < bn_batches; ++i) batches.push_back(source());
      prune::recalibrate_batch_norm(*expected, batches);
    }
    const auto naive = nn::load_model((folder / "naive.safetensors").string());
    for (const auto& [name, buffer] : expected->named_buffers()) {
      INFO(name);
      CHECK(max_abs_diff(naive->buffer(name), buffer) == 0.0);
    }
  }
  std::filesystem::remove_all(folder);
}
