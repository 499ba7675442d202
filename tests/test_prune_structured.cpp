// prune/: dependency groups on every zoo model, channel importances and selection, physical
// removal (output preserved, fewer parameters and MACs, checkpoint round trip).
#include <catch2/catch.hpp>

#include <cstdio>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "nn/summary.hpp"
#include "prune/structured.hpp"

using namespace shears;
using prune::Role;

namespace {

struct ZooCase {
  const char* name;
  nn::ModelOptions options;
};

std::vector<ZooCase> small_zoo() {
  return {
      {"mlpnet", {.in_channels = 1, .input_size = 8}},
      {"mlp", {.in_channels = 1, .input_size = 4, .widths = {6, 5}, .batch_norm = true}},
      {"resnet20", {.input_size = 8}},
      {"resnet18", {.input_size = 8}},
      {"vgg11_bn", {.in_channels = 1, .input_size = 16, .widths = {8, 8, 8, 8, 8, 8, 8, 8}}},
      {"vgg11_bn", {.in_channels = 1, .input_size = 16, .variant = nn::Variant::imagenet,
                    .widths = {4, 4, 4, 4, 4, 4, 4, 4, 6, 6}}},
      {"mobilenet_v1", {.input_size = 8, .width_multiplier = 0.25f}},
  };
}

Shape input_of(const nn::ModelOptions& o) { return {2, o.in_channels, o.input_size, o.input_size}; }

// Zeroes every channel of `channels` on the output side of the group (producer rows and biases,
// depthwise filters, BN γ and β), so that these channels carry zeros to every consumer.
void silence(nn::Module& model, const prune::Group& g, const std::vector<int64_t>& channels) {
  for (const auto& m : g.members) {
    if (m.role == Role::consumer) continue;
    for (const auto& s : m.slices) {
      if (s.buffer) continue;
      Tensor t = model.parameter(s.tensor);
      for (int64_t c : channels) prune::for_each_in_channel(t.shape(), s, c, [&](int64_t i) { t.data()[i] = 0.f; });
    }
  }
}

Tensor eval_forward(nn::Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.eval();
  return model(x);
}

}  // namespace

TEST_CASE("dependency groups: residual adds, downsample, BN, depthwise and flatten couplings", "[prune]") {
  auto resnet = nn::make_model("resnet20", {.input_size = 8});
  auto groups = prune::dependency_groups(*resnet, {1, 3, 8, 8});
  CHECK(groups.size() == 3 + 9);  // one residual group per stage, one inner group per block
  const prune::Group& stage1 = groups.front();
  CHECK(stage1.channels == 16);
  for (const char* p : {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}) CHECK(stage1.contains(p, Role::producer));
  for (const char* p : {"bn1", "layer1.0.bn2", "layer1.2.bn2"}) CHECK(stage1.contains(p, Role::norm));
  for (const char* p : {"layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0"}) CHECK(stage1.contains(p, Role::consumer));
  auto stage2 = std::find_if(groups.begin(), groups.end(), [](auto& g) { return g.contains("layer2.0.downsample.0", Role::producer); });
  REQUIRE(stage2 != groups.end());
  CHECK(stage2->contains("layer2.0.conv2", Role::producer));
  CHECK(stage2->contains("layer2.0.downsample.1", Role::norm));
  CHECK(stage2->contains("layer3.0.downsample.0", Role::consumer));
  auto stage3 = std::find_if(groups.begin(), groups.end(), [](auto& g) { return g.contains("layer3.2.conv2", Role::producer); });
  REQUIRE(stage3 != groups.end());
  CHECK(stage3->contains("fc", Role::consumer));
  CHECK(stage1.describe().find("layer1.0.bn2 => layer1.1.conv1") != std::string::npos);
  for (auto& g : groups) CHECK_FALSE(g.contains("fc", Role::producer));  // the classifier's outputs stay

  auto mobilenet = nn::make_model("mobilenet_v1", {.input_size = 8, .width_multiplier = 0.25f});
  auto mg = prune::dependency_groups(*mobilenet, {1, 3, 8, 8});
  CHECK(mg.size() == 14);  // the stem and 13 pointwise convs; each depthwise joins its input's group
  CHECK(mg[0].contains("features.0.0", Role::producer));
  CHECK(mg[0].contains("features.1.0.0", Role::depthwise));
  CHECK(mg[0].contains("features.1.0.1", Role::norm));
  CHECK(mg[0].contains("features.1.1.0", Role::consumer));
  CHECK_FALSE(mg[0].contains("features.1.0.0", Role::consumer));

  auto vgg = nn::make_model("vgg11_bn", {.in_channels = 1, .input_size = 16, .variant = nn::Variant::imagenet,
                                         .widths = {4, 4, 4, 4, 4, 4, 4, 4, 6, 6}});
  auto vg = prune::dependency_groups(*vgg, {1, 1, 16, 16});
  CHECK(vg.size() == 10);
  const auto& last_conv = vg[7];
  REQUIRE(last_conv.contains("classifier.0", Role::consumer));
  for (auto& m : last_conv.members)
    if (m.role == Role::consumer) CHECK(m.slices[0].span == 49);  // flatten of 4 × 7 × 7 into the Linear

  CHECK(prune::dependency_groups(*resnet, {1, 3, 8, 8}, {"layer1\\.0\\.conv1"}).size() == 11);
  CHECK(prune::dependency_groups(*resnet, {1, 3, 8, 8}, {"conv1"}).size() == 11);  // the stage-1 residual group
}

TEST_CASE("a single-channel conv is not mistaken for a depthwise one", "[prune]") {
  auto model = nn::sequential({std::make_shared<nn::Conv2d>(1, 1, 3, nn::Conv2dConfig{.padding = 1}),
                               std::make_shared<nn::BatchNorm2d>(1), std::make_shared<nn::ReLU>(),
                               std::make_shared<nn::Conv2d>(1, 4, 3), std::make_shared<nn::ReLU>(),
                               std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 2 * 2, 3)});
  auto groups = prune::dependency_groups(*model, {1, 1, 4, 4});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].channels == 1);
  CHECK(groups[0].contains("0", Role::producer));
  CHECK(groups[0].contains("3", Role::consumer));
  CHECK(groups[1].contains("6", Role::consumer));
  // Its only channel cannot be removed.
  auto removed = prune::select_channels(*model, groups, prune::magnitude_importance(1), {.ratio = 1.0});
  CHECK(removed[0].empty());
  CHECK(removed[1].size() == 3);
}

TEST_CASE("channel importances: L1, L2, BN scale, Taylor, random", "[prune]") {
  // fc1 (3 ← 2) · fc2 (2 ← 3): the group of fc1's 3 outputs has rows of fc1 and columns of fc2.
  auto model = nn::sequential({std::make_shared<nn::Linear>(2, 3, false), std::make_shared<nn::BatchNorm1d>(3),
                               std::make_shared<nn::Linear>(3, 2, false)});
  model->parameter("0.weight").copy_(Tensor::from_vector({3, 2}, {1, -1, 0, 2, 3, 0}));
  model->parameter("2.weight").copy_(Tensor::from_vector({2, 3}, {1, 0, -2, 1, 4, 0}));
  model->parameter("1.weight").copy_(Tensor::from_vector({3}, {0.5f, -2, 1}));
  auto groups = prune::dependency_groups(*model, {1, 2});
  REQUIRE(groups.size() == 1);
  // L1 per member: fc1 rows (2, 2, 3), fc2 columns (2, 4, 2); mean (2, 3, 2.5), divided by 2.5.
  auto l1 = prune::magnitude_importance(1)(*model, groups[0]);
  CHECK(l1 == std::vector<float>{0.8f, 1.2f, 1.0f});
  // L2: rows (2, 4, 9), columns (2, 16, 4); mean (2, 10, 6.5), over 37/6.
  auto l2 = prune::magnitude_importance(2)(*model, groups[0]);
  CHECK(l2[0] == Approx(2 / (18.5 / 3)));
  CHECK(l2[1] == Approx(10 / (18.5 / 3)));
  CHECK(prune::bn_scale_importance()(*model, groups[0]) == std::vector<float>{0.5f, 2, 1});
  CHECK_THROWS_AS(prune::taylor_importance()(*model, groups[0]), Error);
  model->parameter("0.weight").set_grad(Tensor::from_vector({3, 2}, {1, 1, 1, 1, 1, 1}));
  model->parameter("2.weight").set_grad(Tensor::from_vector({2, 3}, {2, 2, 2, 0, 0, 0}));
  // |w ⊙ g|: rows (2, 2, 3), columns (2, 0, 4); mean (2, 1, 3.5), over 6.5/3.
  auto taylor = prune::taylor_importance()(*model, groups[0]);
  CHECK(taylor[2] == Approx(3.5 / (6.5 / 3)));
  Generator a(1), b(1);
  CHECK(prune::random_importance(a)(*model, groups[0]) == prune::random_importance(b)(*model, groups[0]));

  auto per = prune::select_channels(*model, groups, prune::magnitude_importance(1), {.ratio = 0.5});
  CHECK(per[0] == std::vector<int64_t>{0});
  auto rounded = prune::select_channels(*model, groups, prune::magnitude_importance(1), {.ratio = 0.7, .round_to = 2});
  CHECK(rounded[0] == std::vector<int64_t>{0});  // keeps 2, a multiple of 2
}

TEST_CASE("global channel selection ranks across groups with a cap", "[prune]") {
  auto model = nn::make_model("mlp", {.in_channels = 1, .input_size = 2, .widths = {4, 4}});
  auto groups = prune::dependency_groups(*model, {1, 1, 2, 2});
  REQUIRE(groups.size() == 2);
  std::vector<std::vector<float>> fixed = {{0.1f, 0.2f, 0.3f, 0.4f}, {5, 6, 7, 0.05f}};
  prune::Importance imp = [&](const nn::Module&, const prune::Group& g) { return fixed[&g - &groups[0]]; };
  auto global = prune::select_channels(*model, groups, imp, {.ratio = 0.5, .distribution = prune::Distribution::global});
  CHECK(global[0] == std::vector<int64_t>{0, 1, 2});
  CHECK(global[1] == std::vector<int64_t>{3});
  auto capped = prune::select_channels(*model, groups, imp,
                                       {.ratio = 0.5, .distribution = prune::Distribution::global, .max_ratio = 0.5});
  CHECK(capped[0] == std::vector<int64_t>{0, 1});
  CHECK(capped[1] == std::vector<int64_t>{0, 3});
  CHECK_THROWS_AS(prune::select_channels(*model, groups, imp, {.ratio = 1.0, .distribution = prune::Distribution::global}),
                  Error);
}

TEST_CASE("removing silenced channels preserves the output; smaller model reloads from its file", "[prune]") {
  for (auto& c : small_zoo()) {
    DYNAMIC_SECTION(c.name << " " << nn::variant_name(c.options.variant)) {
      Generator gen(3);
      auto model = nn::make_model(c.name, c.options, gen);
      // Non-trivial BN statistics and affine parameters.
      for (auto& [n, b] : model->named_buffers())
        if (n.find("running_var") != std::string::npos) b.copy_(test::random_tensor(b.shape(), 5, 0.5f, 1.5f));
      for (auto& [n, p] : model->named_parameters())
        if (p.dim() == 1) p.copy_(test::random_tensor(p.shape(), 6, -0.5f, 0.5f));
      Shape shape = input_of(c.options);
      auto groups = prune::dependency_groups(*model, shape);
      REQUIRE(!groups.empty());
      Generator pick(9);
      auto removed = prune::select_channels(*model, groups, prune::random_importance(pick), {.ratio = 0.4});
      for (size_t g = 0; g < groups.size(); ++g) silence(*model, groups[g], removed[g]);
      Tensor x = test::random_tensor(shape, 4);
      Tensor before = eval_forward(*model, x);
      auto dense = nn::summarize(*model, {1, shape[1], shape[2], shape[3]});
      for (size_t g = 0; g < groups.size(); ++g)
        if (!removed[g].empty()) prune::remove_channels(*model, groups[g], removed[g]);
      test::require_close(eval_forward(*model, x), before, 1e-5, 1e-4);
      auto small = nn::summarize(*model, {1, shape[1], shape[2], shape[3]});
      CHECK(small.parameters < dense.parameters);
      CHECK(small.macs < dense.macs);

      std::string path = "/tmp/shears_test_prune_structured.safetensors";
      model->save_checkpoint(path);
      auto back = nn::load_model(path);
      std::remove(path.c_str());
      test::require_close(eval_forward(*back, x), before, 1e-5, 1e-4);
      CHECK(back->num_parameters() == model->num_parameters());
    }
  }
}

TEST_CASE("prune_channels keeps masks consistent and trains afterwards", "[prune]") {
  auto model = nn::make_model("resnet20", {.input_size = 8});
  model->set_mask("layer1.0.conv1.weight", Tensor::ones(model->parameter("layer1.0.conv1.weight").shape()));
  auto result = prune::prune_channels(*model, {1, 3, 8, 8}, prune::magnitude_importance(2), {.ratio = 0.25});
  CHECK(model->parameter("layer1.0.conv1.weight").size(0) == 12);
  CHECK(model->mask("layer1.0.conv1.weight").shape() == model->parameter("layer1.0.conv1.weight").shape());
  CHECK(model->parameter("fc.weight").size(1) == 48);
  model->train();
  Tensor x = test::random_tensor({2, 3, 8, 8}, 1);
  cross_entropy((*model)(x), {0, 1}).backward();
  CHECK(model->parameter("conv1.weight").grad().defined());
}

TEST_CASE("a configured cnn loses channels, records its new configuration and reloads", "[prune]") {
  for (const char* head : {"gap", "fc"}) {
    INFO(head);
    nn::ModelOptions o{.in_channels = 1, .num_classes = 4, .input_size = 8};
    o.cfg = "8,M,16,16";
    o.batch_norm = true;
    o.head = head;
    auto model = nn::make_model("cnn", o);
    prune::prune_channels(*model, {1, 1, 8, 8}, prune::magnitude_importance(1), {.ratio = 0.5});
    const auto meta = nn::refreshed_metadata(*model);
    CHECK(meta.at("cfg") == "4,M,8,8");
    CHECK(meta.at("head") == head);
    const std::string path = "/tmp/shears_test_cnn_pruned.safetensors";
    model->save_checkpoint(path, meta);
    auto loaded = nn::load_model(path);
    CHECK(loaded->metadata().at("cfg") == "4,M,8,8");
    model->eval();
    loaded->eval();
    NoGradGuard no_grad;
    const Tensor x = test::random_tensor({2, 1, 8, 8}, 5);
    CHECK((*loaded)(x).to_vector() == (*model)(x).to_vector());
    std::remove(path.c_str());
  }
}
