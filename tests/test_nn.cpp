// The module system and the layers: names, registration order, state dicts and masks, strict
// loading, modes, copies, initialisation and each layer's PyTorch semantics.
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/version.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/summary.hpp"
#include "tests/helpers.hpp"

namespace shears::nn {
namespace {

using test::TempDir;

using Catch::Matchers::Contains;

std::vector<std::string> keys(const std::vector<safetensors::Entry>& state) {
  std::vector<std::string> out;
  for (const auto& e : state) out.push_back(e.name);
  return out;
}

const safetensors::Entry& entry(const std::vector<safetensors::Entry>& state, const std::string& name) {
  auto it = std::find_if(state.begin(), state.end(), [&](const auto& e) { return e.name == name; });
  INFO("state entry " << name);
  REQUIRE(it != state.end());
  return *it;
}

// conv · BN · ReLU · pool · conv · flatten · linear, as a Sequential: parameter-less layers count.
std::shared_ptr<Sequential> small_net(Generator& gen) {
  return sequential({std::make_shared<Conv2d>(2, 4, 3, Conv2dConfig{.padding = 1}, gen),
                     std::make_shared<BatchNorm2d>(4), std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                     std::make_shared<Conv2d>(4, 3, 1, Conv2dConfig{.bias = false}, gen), std::make_shared<Flatten>(),
                     std::make_shared<Linear>(12, 5, true, gen)});
}

// A module with its own parameter, a buffer and children, to check the per-module key order.
class Custom : public Cloneable<Custom> {
 public:
  explicit Custom(Generator& gen) {
    register_parameter("scale", Tensor::ones({3}));
    register_module("body", sequential({std::make_shared<Linear>(3, 3, true, gen), std::make_shared<ReLU>()}));
    register_buffer("steps", Tensor::scalar(0.f), Dtype::I64);
    register_module("head", std::make_shared<Linear>(3, 2, false, gen));
  }
  Tensor forward(const Tensor& x) override { return call("head", call("body", x * effective("scale"))); }
  const char* type_name() const override { return "Custom"; }
  void register_again() { register_parameter("body", Tensor::ones({1})); }
};

}  // namespace

TEST_CASE("state_dict keys follow PyTorch: dotted paths, Sequential indices counting parameter-less layers", "[nn]") {
  Generator gen(1);
  auto net = small_net(gen);
  CHECK(keys(net->state_dict()) ==
        std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                 "1.num_batches_tracked", "4.weight", "6.weight", "6.bias"});
  // Per module: parameters, then buffers, then children, whatever the registration interleaving.
  Custom custom(gen);
  CHECK(keys(custom.state_dict()) ==
        std::vector<std::string>{"scale", "steps", "body.0.weight", "body.0.bias", "head.weight"});
  std::vector<std::string> params;
  for (auto& [name, t] : custom.named_parameters()) params.push_back(name);
  CHECK(params == std::vector<std::string>{"scale", "body.0.weight", "body.0.bias", "head.weight"});
  CHECK(custom.num_parameters() == 3 + 12 + 6);
  CHECK_THROWS_WITH(custom.register_again(), Contains("'body' is already registered"));
}

TEST_CASE("num_batches_tracked is an I64 scalar buffer; state tensors share storage with the module", "[nn]") {
  BatchNorm2d bn(3);
  auto state = bn.state_dict();
  const auto& tracked = entry(state, "num_batches_tracked");
  CHECK(tracked.dtype == Dtype::I64);
  CHECK(tracked.value.shape() == Shape{});
  CHECK(entry(state, "running_mean").dtype == Dtype::F32);
  CHECK(entry(state, "weight").value.shares_storage_with(bn.parameter("weight")));
}

TEST_CASE("modules are reached by dotted path, replaced by name, and errors name the children", "[nn]") {
  Generator gen(2);
  Custom custom(gen);
  CHECK(std::string(custom["body.0"].type_name()) == "Linear");
  CHECK(custom.get<Linear>("head").out_features() == 2);
  CHECK(custom.has_parameter("body.0.bias"));
  CHECK_FALSE(custom.has_parameter("body.1.bias"));
  CHECK_FALSE(custom.has_parameter("nothing.weight"));
  CHECK_THROWS_WITH(custom["body.7"], Contains("no module 'body.7'") && Contains("children: 0, 1"));
  CHECK_THROWS_WITH(custom.get<Conv2d>("head"), Contains("'head' is a Linear"));

  Tensor x = test::random_tensor({4, 3}, 3);
  auto replacement = std::make_shared<Linear>(3, 2, true, gen);
  custom.replace("head", replacement);
  CHECK(&custom["head"] == replacement.get());
  std::vector<std::string> names;
  for (auto& [name, m] : custom.named_children()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"body", "head"});
  NoGradGuard no_grad;
  Tensor expected = linear(relu(linear(x, custom.parameter("body.0.weight"), custom.parameter("body.0.bias"))),
                           replacement->parameter("weight"), replacement->parameter("bias"));
  test::require_close(custom(x), expected);
}

TEST_CASE("a failing forward names the module path", "[nn]") {
  Generator gen(3);
  Custom custom(gen);
  custom.set_parameter("head.weight", Tensor::zeros({2, 4}));  // in_features no longer match
  CHECK_THROWS_WITH(custom(Tensor::zeros({1, 3})), Contains("forward of head (Linear)"));
  auto outer = sequential({std::make_shared<Identity>(), std::make_shared<Custom>(gen)});
  outer->set_parameter("1.body.0.weight", Tensor::zeros({3, 5}));
  CHECK_THROWS_WITH((*outer)(Tensor::zeros({1, 3})), Contains("forward of 1.body.0 (Linear): linear"));
}

TEST_CASE("train/eval reach every module, zero_grad clears every gradient", "[nn]") {
  Generator gen(4);
  auto net = small_net(gen);
  for (auto& [name, m] : net->named_modules()) CHECK(m->is_training());
  net->eval();
  for (auto& [name, m] : net->named_modules()) CHECK_FALSE(m->is_training());
  net->train();
  sum((*net)(test::random_tensor({2, 2, 4, 4}, 5))).backward();
  for (auto& [name, p] : net->named_parameters()) CHECK(p.grad().defined());
  net->zero_grad();
  for (auto& [name, p] : net->named_parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("clone is a deep copy with the same outputs", "[nn]") {
  Generator gen(5);
  auto net = small_net(gen);
  net->set_mask("4.weight", Tensor::ones({3, 4, 1, 1}));
  auto copy = std::dynamic_pointer_cast<Sequential>(net->clone());
  REQUIRE(copy != nullptr);
  CHECK(keys(copy->state_dict()) == keys(net->state_dict()));
  net->eval();
  copy->eval();
  Tensor x = test::random_tensor({2, 2, 4, 4}, 6);
  {
    NoGradGuard no_grad;
    CHECK((*copy)(x).to_vector() == (*net)(x).to_vector());
  }
  for (auto& [name, t] : copy->named_parameters()) {
    CHECK_FALSE(t.shares_storage_with(net->parameter(name)));
    CHECK(t.requires_grad());
  }
  CHECK_FALSE(copy->buffer("1.running_var").shares_storage_with(net->buffer("1.running_var")));
  CHECK_FALSE(copy->mask("4.weight").shares_storage_with(net->mask("4.weight")));
  copy->parameter("0.weight").fill_(0.f);
  CHECK(net->parameter("0.weight").to_vector() != copy->parameter("0.weight").to_vector());
  CHECK(&(*copy)["2"] != &(*net)["2"]);
}

TEST_CASE("PyTorch's default init: U(±1/√fan_in) for Linear and Conv2d, BN weight 1 bias 0", "[nn]") {
  Generator gen(7);
  Conv2d conv(16, 32, 3, {}, gen);  // fan_in = 16·9
  Linear fc(200, 50, true, gen);
  for (auto [w, fan] : {std::pair{conv.parameter("weight"), 144}, std::pair{fc.parameter("weight"), 200}}) {
    float bound = 1.f / std::sqrt(static_cast<float>(fan)), lo = 0.f, hi = 0.f;
    double sq = 0.0;
    for (float v : w.to_vector()) lo = std::min(lo, v), hi = std::max(hi, v), sq += double(v) * v;
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    CHECK(lo < -0.95f * bound);
    CHECK(hi > 0.95f * bound);
    CHECK(std::sqrt(sq / w.numel()) == Approx(bound / std::sqrt(3.f)).epsilon(0.05));  // U(±b) has std b/√3
  }
  float bias_bound = 1.f / std::sqrt(144.f);
  for (float v : conv.parameter("bias").to_vector()) CHECK(std::abs(v) <= bias_bound);
  BatchNorm2d bn(5);
  CHECK(bn.parameter("weight").to_vector() == std::vector<float>(5, 1.f));
  CHECK(bn.parameter("bias").to_vector() == std::vector<float>(5, 0.f));
  CHECK(bn.buffer("running_var").to_vector() == std::vector<float>(5, 1.f));
}

TEST_CASE("kaiming_normal_(fan_out) has std √(2/fan_out); one seed gives one init", "[nn]") {
  Generator gen(8);
  Tensor w = Tensor::empty({64, 32, 3, 3});
  init::kaiming_normal_(w, gen, 0.0, init::Fan::out);
  double sq = 0.0, total = 0.0;
  for (float v : w.to_vector()) sq += double(v) * v, total += v;
  CHECK(total / w.numel() == Approx(0.0).margin(0.005));
  CHECK(std::sqrt(sq / w.numel()) == Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.03));
  CHECK(init::fan_in({64, 32, 3, 3}) == 288);
  CHECK(init::fan_out({10, 7}) == 10);

  Generator a(9), b(9), c(10);
  CHECK(Linear(4, 3, true, a).parameter("weight").to_vector() == Linear(4, 3, true, b).parameter("weight").to_vector());
  CHECK(Linear(4, 3, true, a).parameter("weight").to_vector() != Linear(4, 3, true, c).parameter("weight").to_vector());
}

TEST_CASE("BatchNorm tracks running statistics with momentum 0.1 and counts batches only in training", "[nn]") {
  BatchNorm1d bn(2);
  Tensor x = Tensor::from_vector({4, 2}, {1, 10, 2, 20, 3, 30, 4, 40});
  bn(x);
  bn(x);
  CHECK(bn.buffer("num_batches_tracked").item() == 2.f);
  // mean (2.5, 25), unbiased var (5/3, 500/3): running = 0.9²·start + (1 − 0.9²)·batch.
  CHECK(bn.buffer("running_mean").to_vector()[1] == Approx(0.19 * 25));
  CHECK(bn.buffer("running_var").to_vector()[0] == Approx(0.81 + 0.19 * 5.0 / 3));
  bn.eval();
  Tensor y = bn(x);
  CHECK(bn.buffer("num_batches_tracked").item() == 2.f);
  float rm = bn.buffer("running_mean").to_vector()[0], rv = bn.buffer("running_var").to_vector()[0];
  CHECK(y.to_vector()[0] == Approx((1 - rm) / std::sqrt(rv + 1e-5f)));

  BatchNorm1d cumulative(2, {.momentum = std::nullopt});
  cumulative(x);
  cumulative(Tensor::from_vector({4, 2}, {5, 0, 6, 0, 7, 0, 8, 0}));
  CHECK(cumulative.buffer("running_mean").to_vector()[0] == Approx((2.5 + 6.5) / 2));  // plain average

  BatchNorm2d untracked(3, {.affine = false, .track_running_stats = false});
  CHECK(untracked.state_dict().empty());
  untracked.eval();
  Tensor z = untracked(test::random_tensor({2, 3, 2, 2}, 11, 0.f, 5.f));
  CHECK(mean(z).item() == Approx(0.f).margin(1e-5));  // batch statistics even in eval
  CHECK_THROWS_WITH(untracked(Tensor::zeros({2, 3})), Contains("expected a 4-D input"));
}

TEST_CASE("layers compute PyTorch's output shapes and read their sizes from their tensors", "[nn]") {
  Generator gen(12);
  Tensor x = test::random_tensor({2, 4, 9, 9}, 13);
  Conv2d conv(4, 6, {3, 2}, {.stride = {2, 1}, .padding = 1, .dilation = {1, 2}, .groups = 2, .bias = false}, gen);
  CHECK(conv.parameter("weight").shape() == Shape{6, 2, 3, 2});
  CHECK_FALSE(conv.has_parameter("bias"));
  CHECK(conv(x).shape() == Shape{2, 6, 5, 9});
  CHECK(conv.in_channels() == 4);
  CHECK(MaxPool2d(2)(x).shape() == Shape{2, 4, 4, 4});  // stride defaults to the kernel
  CHECK(MaxPool2d(3, 2, 1)(x).shape() == Shape{2, 4, 5, 5});
  CHECK(AvgPool2d(3, 1)(x).shape() == Shape{2, 4, 7, 7});
  CHECK(AdaptiveAvgPool2d({1, 3})(x).shape() == Shape{2, 4, 1, 3});
  CHECK(Flatten()(x).shape() == Shape{2, 324});
  CHECK(Flatten(2)(x).shape() == Shape{2, 4, 81});
  CHECK(Identity()(x).shares_storage_with(x));
  CHECK(ReLU6()(Tensor::from_vector({3}, {-1, 3, 9})).to_vector() == std::vector<float>{0, 3, 6});
  CHECK_THROWS_WITH(Conv2d(3, 4, 3, {.groups = 2}, gen), Contains("multiples of groups 2"));

  // Structured pruning shrinks a tensor in place: the layer follows its weight's shape.
  Linear fc(8, 5, true, gen);
  fc.set_parameter("weight", Tensor::zeros({5, 6}));
  CHECK(fc.in_features() == 6);
  CHECK(fc(Tensor::zeros({3, 6})).shape() == Shape{3, 5});
  CHECK(fc.parameter("weight").requires_grad());
}

TEST_CASE("a depthwise conv shrunk in place stays depthwise: its groups follow its weight", "[nn]") {
  Generator gen(24);
  Conv2d depthwise(4, 4, 3, {.padding = 1, .groups = 4}, gen);
  CHECK(depthwise.depthwise());
  NoGradGuard no_grad;
  // Keep channels 1 and 3: weight (4, 1, 3, 3) → (2, 1, 3, 3), bias (4) → (2).
  auto keep = [](const Tensor& t) { return concat({slice(t, 0, 1, 2), slice(t, 0, 3, 4)}, 0); };
  Tensor x = test::random_tensor({2, 4, 5, 5}, 25);
  Tensor before = depthwise(x);
  depthwise.set_parameter("weight", keep(depthwise.parameter("weight")));
  depthwise.set_parameter("bias", keep(depthwise.parameter("bias")));
  CHECK(depthwise.groups() == 2);
  CHECK(depthwise.config().groups == 2);
  CHECK(depthwise.in_channels() == 2);
  CHECK(depthwise.out_channels() == 2);
  Tensor after = depthwise(concat({slice(x, 1, 1, 2), slice(x, 1, 3, 4)}, 1));
  test::require_close(after, concat({slice(before, 1, 1, 2), slice(before, 1, 3, 4)}, 1), 1e-6, 1e-6);
  CHECK(depthwise.macs({2, 2, 5, 5}, after.shape()) == after.numel() * 9);
  CHECK(depthwise.clone()->forward(slice(x, 1, 0, 2)).shape() == Shape{2, 2, 5, 5});

  // A grouped conv that is not depthwise keeps its groups.
  Conv2d grouped(4, 8, 1, {.groups = 2}, gen);
  CHECK_FALSE(grouped.depthwise());
  grouped.set_parameter("weight", Tensor::zeros({4, 2, 1, 1}));
  CHECK(grouped.groups() == 2);
  CHECK(grouped.in_channels() == 4);
  CHECK_FALSE(Conv2d(1, 1, 3, {}, gen).depthwise());
}

TEST_CASE("BatchNorm knows its size with or without tensors", "[nn]") {
  CHECK(BatchNorm2d(5, {.affine = false, .track_running_stats = false}).num_features() == 5);
  CHECK(BatchNorm1d(3, {.affine = false}).num_features() == 3);
  BatchNorm2d shrunk(4);
  shrunk.set_parameter("weight", Tensor::ones({2}));
  CHECK(shrunk.num_features() == 2);
}

TEST_CASE("structured pruning can shrink a conv-BN-conv chain tensor by tensor", "[nn]") {
  Generator gen(22);
  auto net = sequential({std::make_shared<Conv2d>(2, 4, 3, Conv2dConfig{.padding = 1}, gen),
                         std::make_shared<BatchNorm2d>(4), std::make_shared<Conv2d>(4, 3, 1, Conv2dConfig{}, gen)});
  // Keep channels 0 and 2 of the middle layer: the producer's rows, the BN's entries, the consumer's columns.
  auto keep = [](const Tensor& t, int64_t dim) { return concat({slice(t, dim, 0, 1), slice(t, dim, 2, 3)}, dim); };
  NoGradGuard no_grad;
  for (const char* name : {"0.weight", "0.bias", "1.weight", "1.bias"})
    net->set_parameter(name, keep(net->parameter(name), 0));
  for (const char* name : {"1.running_mean", "1.running_var"}) {
    REQUIRE(net->has_buffer(name));
    net->set_buffer(name, keep(net->buffer(name), 0));
  }
  net->set_parameter("2.weight", keep(net->parameter("2.weight"), 1));
  CHECK_FALSE(net->has_buffer("1.nothing"));
  CHECK(net->get<Conv2d>("0").out_channels() == 2);
  CHECK(net->get<BatchNorm2d>("1").num_features() == 2);
  CHECK(net->get<Conv2d>("2").in_channels() == 2);
  CHECK((*net)(test::random_tensor({2, 2, 5, 5}, 23)).shape() == Shape{2, 3, 5, 5});
  CHECK(net->state_dict()[4].value.shape() == Shape{2});  // 1.running_mean
}

TEST_CASE("Dropout drops and rescales in training only", "[nn]") {
  Generator gen(14);
  Dropout drop(0.25f, gen);
  Tensor x = Tensor::ones({4000});
  std::vector<float> y = drop(x).to_vector();
  int64_t zeros = std::count(y.begin(), y.end(), 0.f);
  CHECK(zeros == Approx(1000).margin(120));
  CHECK(*std::max_element(y.begin(), y.end()) == Approx(1 / 0.75f));
  drop.eval();
  CHECK(drop(x).to_vector() == x.to_vector());
}

TEST_CASE("Dropout draws from its own generator, seeded from the one it is built with, and clones safely", "[nn]") {
  Tensor x = Tensor::ones({64});
  auto masks_of = [&](uint64_t build_seed, uint64_t default_seed) {
    Generator gen(build_seed);
    Dropout drop(0.5f, gen);
    manual_seed(default_seed);  // the process-wide generator plays no part
    return drop(x).to_vector();
  };
  CHECK(masks_of(3, 100) == masks_of(3, 200));
  CHECK(masks_of(3, 100) != masks_of(4, 100));

  // A clone owns a copy of the generator: it outlives the one the layer was built with and
  // continues the same stream as the original, independently of it.
  std::shared_ptr<Module> copy;
  std::vector<float> first, second;
  {
    Generator gen(3);
    Dropout drop(0.5f, gen);
    copy = drop.clone();
    first = drop(x).to_vector();
    second = drop(x).to_vector();
  }
  CHECK((*copy)(x).to_vector() == first);
  CHECK((*copy)(x).to_vector() == second);
}

TEST_CASE("a mask makes the forward use weight ⊙ mask and masks the raw weight's gradient", "[nn]") {
  Generator gen(15);
  Linear fc(3, 2, true, gen);
  Tensor mask = Tensor::from_vector({2, 3}, {1, 0, 1, 0, 1, 1});
  fc.set_mask("weight", mask);
  Tensor x = test::random_tensor({4, 3}, 16);
  Tensor y = fc(x);
  {
    NoGradGuard no_grad;
    test::require_close(y, linear(x, mul(fc.parameter("weight"), mask), fc.parameter("bias")));
  }
  sum(y).backward();
  std::vector<float> g = fc.parameter("weight").grad().to_vector();
  CHECK(g[1] == 0.f);
  CHECK(g[3] == 0.f);
  CHECK(g[0] != 0.f);
  CHECK_THROWS_WITH(fc.set_mask("weight", Tensor::ones({3, 2})), Contains("must have the parameter's shape [2, 3]"));
  CHECK_THROWS_WITH(fc.set_parameter("weight", Tensor::zeros({2, 4})), Contains("remove or re-set the mask"));
  fc.remove_mask("weight");  // prune.remove: the pruning becomes permanent
  CHECK_FALSE(fc.has_mask("weight"));
  CHECK(fc.parameter("weight").to_vector()[1] == 0.f);
}

TEST_CASE("masked parameters are saved as PyTorch's _orig + _mask pair or dense", "[nn]") {
  Generator gen(17);
  Conv2d conv(2, 2, 1, {}, gen);
  Tensor mask = Tensor::from_vector({2, 2, 1, 1}, {1, 0, 0, 1});
  conv.set_mask("weight", mask);
  // torch.nn.utils.prune moves `weight` to the end: ['bias', 'weight_orig', 'weight_mask'].
  auto reparametrised = conv.state_dict();
  CHECK(keys(reparametrised) == std::vector<std::string>{"bias", "weight_orig", "weight_mask"});
  CHECK(entry(reparametrised, "weight_orig").value.to_vector() == conv.parameter("weight").to_vector());
  auto dense = conv.state_dict(MaskFormat::dense);
  CHECK(keys(dense) == std::vector<std::string>{"weight", "bias"});
  std::vector<float> w = conv.parameter("weight").to_vector();
  CHECK(entry(dense, "weight").value.to_vector() == std::vector<float>{w[0], 0, 0, w[3]});

  // The file decides: _orig + _mask attaches the mask, a dense weight drops it.
  Conv2d other(2, 2, 1, {}, gen);
  other.load_state_dict(reparametrised);
  REQUIRE(other.has_mask("weight"));
  CHECK(other.mask("weight").to_vector() == mask.to_vector());
  CHECK(other.parameter("weight").to_vector() == w);
  other.load_state_dict(dense);
  CHECK_FALSE(other.has_mask("weight"));
  CHECK(other.parameter("weight").to_vector() == std::vector<float>{w[0], 0, 0, w[3]});
  // Unknown names are simply unmasked, as has_parameter says they are absent.
  CHECK_FALSE(other.has_mask("nothing.weight"));
  CHECK_FALSE(other.has_mask("nothing"));
  auto orig_only = reparametrised;
  orig_only.pop_back();
  CHECK_THROWS_WITH(other.load_state_dict(orig_only), Contains("missing key: weight_mask"));
}

TEST_CASE("strict loading lists every missing, unexpected and mis-shaped key and changes nothing", "[nn]") {
  Generator gen(18);
  auto net = small_net(gen);
  auto state = small_net(gen)->state_dict();
  std::vector<float> before = net->parameter("6.weight").to_vector();
  auto broken = state;
  broken.erase(broken.begin() + 2);  // 1.weight
  broken.erase(broken.begin());      // 0.weight
  broken.push_back({"7.weight", Tensor::zeros({2}), Dtype::F32});
  for (auto& e : broken)
    if (e.name == "6.bias") e.value = Tensor::zeros({4});
  try {
    net->load_state_dict(broken);
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Contains("2 missing keys: 0.weight, 1.weight"));
    CHECK_THAT(msg, Contains("1 unexpected key: 7.weight"));
    CHECK_THAT(msg, Contains("1 shape mismatch: 6.bias (model [5], file [4])"));
  }
  CHECK(net->parameter("6.weight").to_vector() == before);

  LoadReport report = net->load_state_dict(broken, false);
  CHECK(report.missing == std::vector<std::string>{"0.weight", "1.weight"});
  CHECK(report.unexpected == std::vector<std::string>{"7.weight"});
  REQUIRE(report.mismatched.size() == 1);
  CHECK(report.mismatched[0].name == "6.bias");
  CHECK(net->parameter("6.weight").to_vector() == entry(state, "6.weight").value.to_vector());

  CHECK(net->load_state_dict(state).ok());
  auto twice = state;
  twice.push_back(state[0]);
  CHECK_THROWS_WITH(net->load_state_dict(twice), Contains("key '0.weight' appears twice"));
}

TEST_CASE("an integer buffer only loads values its dtype holds exactly, whatever the entry's dtype", "[nn]") {
  Generator gen(26);
  auto net = small_net(gen);
  auto state = net->state_dict();
  for (auto& e : state)
    if (e.name == "1.num_batches_tracked") e = {e.name, Tensor::scalar(7.f), Dtype::F32};
  CHECK(net->load_state_dict(state).ok());  // 7.0 as F32 is a count
  CHECK(net->buffer("1.num_batches_tracked").item() == 7.f);
  std::vector<float> before = net->parameter("0.weight").to_vector();
  for (auto& e : state) {
    if (e.name == "1.num_batches_tracked") e.value = Tensor::scalar(7.5f);
    if (e.name == "0.weight") e.value = Tensor::zeros(e.value.shape());
  }
  CHECK_THROWS_WITH(net->load_state_dict(state),
                    Contains("key '1.num_batches_tracked': expected values the buffer's I64 holds exactly, got 7.5"));
  CHECK_THROWS_WITH(net->load_state_dict(state, false), Contains("key '1.num_batches_tracked'"));
  CHECK(net->parameter("0.weight").to_vector() == before);  // nothing changed
  CHECK(net->buffer("1.num_batches_tracked").item() == 7.f);

  // From a file, the error starts with its path.
  TempDir dir;
  std::string path = dir.file("bad_count.safetensors");
  safetensors::save(path, state);
  CHECK_THROWS_WITH(net->load_checkpoint(path),
                    Catch::StartsWith(path + ": load_state_dict: key '1.num_batches_tracked'") && Contains("7.5"));
}

TEST_CASE("checkpoint provenance wins over model metadata and extra keys", "[nn]") {
  Generator gen(27);
  auto net = small_net(gen);
  net->metadata()["format"] = "np";
  TempDir dir;
  net->save_checkpoint(dir.file("m.safetensors"), {{"shears.version", "0.0.0"}, {"epoch", "2"}});
  safetensors::File file = safetensors::load(dir.file("m.safetensors"));
  CHECK(file.metadata.at("format") == "pt");
  CHECK(file.metadata.at("shears.version") == kVersion);
  CHECK(file.metadata.at("epoch") == "2");
}

TEST_CASE("loaded values are copied into the registered tensors, so outside handles stay valid", "[nn]") {
  Generator gen(19);
  auto net = small_net(gen), source = small_net(gen);
  Tensor held = net->parameter("0.weight");
  (*source)(test::random_tensor({2, 2, 4, 4}, 20));  // move BN statistics and the batch count
  net->load_state_dict(source->state_dict());
  CHECK(held.to_vector() == source->parameter("0.weight").to_vector());
  CHECK(net->buffer("1.num_batches_tracked").item() == 1.f);
  CHECK(net->buffer("1.running_mean").to_vector() == source->buffer("1.running_mean").to_vector());
}

TEST_CASE("summary lists leaf layers in call order with shapes, parameters and MACs", "[nn]") {
  Generator gen(21);
  auto net = small_net(gen);
  (*net)["2"].eval();
  Summary s = summarize(*net, {1, 2, 4, 4});
  REQUIRE(s.layers.size() == 7);
  CHECK(s.layers[0].name == "0");
  CHECK(s.layers[0].type == "Conv2d");
  CHECK(s.layers[0].output_shape == Shape{1, 4, 4, 4});
  CHECK(s.layers[0].parameters == 4 * 2 * 9 + 4);
  CHECK(s.layers[0].macs == 64 * 18);  // 64 outputs × 18 taps
  CHECK(s.layers[3].output_shape == Shape{1, 4, 2, 2});
  CHECK(s.layers[4].macs == 12 * 4);
  CHECK(s.layers[6].macs == 5 * 12);
  CHECK(s.macs == 64 * 18 + 48 + 60);
  CHECK(s.flops() == 2 * s.macs);
  CHECK(s.parameters == net->num_parameters());
  // Each module's own mode is restored.
  CHECK(net->is_training());
  CHECK_FALSE((*net)["2"].is_training());
  CHECK((*net)["1"].is_training());
}

}  // namespace shears::nn
