// The per-op profiler (core/profile.hpp): what it attributes to which op and layer, that it
// changes no result, and that it costs nothing when off. Timings themselves live in benchmarks:
// these tests check attribution and arithmetic, never durations.
#include <algorithm>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"
#include "nn/models/registry.hpp"
#include "optim/optimizer.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

using Catch::Contains;

const profile::Entry* find(const std::vector<profile::Entry>& entries, const std::string& layer,
                           const std::string& kind) {
  for (const profile::Entry& e : entries)
    if (e.layer == layer && e.kind == kind) return &e;
  return nullptr;
}

struct Step {
  std::shared_ptr<nn::Module> model;
  Tensor x;
  std::vector<int64_t> labels{0, 1, 2, 3};
  std::unique_ptr<optim::Sgd> sgd;

  Step() {
    Generator gen(3);
    model = nn::make_model(
        "cnn", {.in_channels = 1, .num_classes = 4, .input_size = 8, .batch_norm = true, .cfg = "4,M,6"}, gen);
    x = Tensor::randn({4, 1, 8, 8}, gen);
    sgd = std::make_unique<optim::Sgd>(std::vector<optim::ParamGroup>{{model->named_parameters(), 0.1, 0.0, 0.0}},
                                       optim::SgdOptions{0.1, 0.9, 0.0, 0.0, false});
  }
  void operator()() {
    Tensor loss = cross_entropy((*model)(x), labels);
    sgd->zero_grad();
    loss.backward();
    sgd->step();
  }
};

TEST_CASE("the profiler attributes every op of a training step to its layer and kind", "[profile]") {
  Step step;
  profile::Session session;
  step();
  session.reset();
  step();
  step();
  const auto& entries = session.entries();
  const profile::Entry* conv = find(entries, "features.0", "conv2d");
  REQUIRE(conv != nullptr);
  CHECK(conv->calls == 2);
  CHECK(conv->forward_seconds > 0);
  CHECK(conv->backward_seconds > 0);
  // 2 steps x 2 x N·C_out·H·W·C_in·k·k multiply-adds: 4 images, 4 channels of 8x8, 1 input channel, 3x3.
  CHECK(conv->flops == 2.0 * 2 * 4 * 4 * 8 * 8 * 1 * 9);
  CHECK_THAT(conv->path, Contains(" / "));
  // Bytes of the forward: input, weight, bias and output, per call.
  CHECK(conv->bytes == 2.0 * 4 * (4 * 64 + 4 * 9 + 4 + 4 * 4 * 64));
  for (const auto& [layer, kind] : {std::pair<std::string, std::string>{"features.1", "batch_norm"},
                                    {"features.2", "relu"},
                                    {"features.3", "max_pool2d"},
                                    {"classifier", "linear"},
                                    {"", "cross_entropy"},
                                    {"", "optimizer step"},
                                    {"", "zero_grad"},
                                    {"", "grad accumulation"}}) {
    INFO(layer << " " << kind);
    const profile::Entry* e = find(entries, layer, kind);
    REQUIRE(e != nullptr);
  }
  CHECK(find(entries, "", "optimizer step")->calls == 2);
  CHECK(find(entries, "classifier", "linear")->backward_seconds > 0);
  const std::string report = profile::format_report(entries, 0.01, 2);
  CHECK_THAT(report, Contains("per op kind") && Contains("conv2d") && Contains("features.0 conv2d") &&
                         Contains("outside any op"));
}

TEST_CASE("nested op scopes count their own time once; a backward's inner ops stay in the backward", "[profile]") {
  profile::Session session;
  {
    profile::OpScope outer("outer");
    Tensor a = Tensor::ones({64, 64});
    Tensor b = matmul(a, a);  // an op inside an op
    CHECK(profile::current_entry() == outer.entry());
  }
  const auto& entries = session.entries();
  const profile::Entry* outer = find(entries, "", "outer");
  const profile::Entry* inner = find(entries, "", "matmul");
  REQUIRE(outer != nullptr);
  REQUIRE(inner != nullptr);
  CHECK(outer->calls == 1);
  CHECK(inner->calls == 1);
  CHECK(inner->flops == 2.0 * 64 * 64 * 64);
  CHECK(outer->flops == 0);
  // conv2d's backward sums dy for the bias with the sum op: that is conv2d's backward time, not a forward.
  Tensor x = Tensor::ones({1, 1, 4, 4}), w = Tensor::ones({2, 1, 3, 3}).requires_grad_(true);
  Tensor bias = Tensor::zeros({2}).requires_grad_(true);
  session.reset();
  sum(conv2d(x, w, bias, {.padding = {1, 1}})).backward();
  CHECK(find(entries, "", "sum")->calls == 1);  // the forward sum only
  CHECK(find(entries, "", "conv2d")->backward_seconds > 0);
}

TEST_CASE("profiling changes no result, and is off without a session", "[profile]") {
  Step plain, profiled;
  CHECK_FALSE(profile::active());
  CHECK(profile::current_entry() == -1);
  plain();
  plain();
  {
    profile::Session session;
    CHECK(profile::active());
    profiled();
    profiled();
  }
  CHECK_FALSE(profile::active());
  const auto a = plain.model->named_parameters(), b = profiled.model->named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor &p = a[i].second, &q = b[i].second;
    REQUIRE(q.numel() == p.numel());
    CHECK(std::equal(p.data(), p.data() + p.numel(), q.data()));  // bit for bit (no NaNs here)
  }
  CHECK_THROWS_WITH(([] {
                      profile::Session a;
                      profile::Session b;
                    }()),
                    Contains("already running"));
}

}  // namespace
}  // namespace shears
