// Golden comparisons with PyTorch: tests/fixtures/core_ops.safetensors holds inputs, outputs and
// gradients computed by PyTorch 1.13.1 (tools/gen_core_fixtures.py; the command and versions are
// in the file's metadata). Every case in the file is replayed here through the shears ops.
#include <map>
#include <set>

#include "core/ops.hpp"
#include "nn/safetensors.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

constexpr double kAtol = 1e-4, kRtol = 1e-4;

class Fixture {
 public:
  Fixture() : file_(safetensors::load(SHEARS_FIXTURES "/core_ops.safetensors")) {
    for (const auto& e : file_.tensors) {
      auto first = e.name.find('.'), second = e.name.find('.', first + 1);
      cases_[e.name.substr(0, first)].insert(e.name.substr(first + 1, second - first - 1));
    }
  }
  const std::map<std::string, std::set<std::string>>& cases() const { return cases_; }
  bool has(const std::string& name) const { return file_.find(name) != nullptr; }
  Tensor get(const std::string& name) const {
    const safetensors::Entry* e = file_.find(name);
    INFO("fixture tensor " << name);
    REQUIRE(e != nullptr);
    return e->value.clone();
  }
  const std::map<std::string, std::string>& metadata() const { return file_.metadata; }

 private:
  safetensors::File file_;
  std::map<std::string, std::set<std::string>> cases_;
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  test::require_close(got, want, kAtol, kRtol);
}

void replay_conv2d(const std::string& p) {
  const Fixture& f = fixture();
  std::vector<float> o = f.get(p + ".options").to_vector();
  Conv2dOptions opt{{int64_t(o[0]), int64_t(o[1])}, {int64_t(o[2]), int64_t(o[3])}, {int64_t(o[4]), int64_t(o[5])},
                    int64_t(o[6])};
  Tensor x = f.get(p + ".x").requires_grad_(), w = f.get(p + ".w").requires_grad_();
  Tensor b = o[7] != 0 ? f.get(p + ".b").requires_grad_() : Tensor();
  Tensor y = conv2d(x, w, b, opt);
  y.backward(f.get(p + ".dy"));
  expect_close(y, f.get(p + ".y"), "y");
  expect_close(x.grad(), f.get(p + ".dx"), "dx");
  expect_close(w.grad(), f.get(p + ".dw"), "dw");
  if (b.defined()) expect_close(b.grad(), f.get(p + ".db"), "db");
}

void replay_batch_norm(const std::string& p) {
  const Fixture& f = fixture();
  Tensor rm = f.get(p + ".running_mean_start"), rv = f.get(p + ".running_var_start");
  Tensor weight = f.get(p + ".weight").requires_grad_(), bias = f.get(p + ".bias").requires_grad_();
  Tensor x, y;
  for (int step = 0; step < 3; ++step) {
    x = f.get(p + ".x" + std::to_string(step)).requires_grad_();
    y = batch_norm(x, weight, bias, rm, rv, true, 0.1f, 1e-5f);
  }
  y.backward(f.get(p + ".dy"));
  expect_close(y, f.get(p + ".y"), "train y");
  expect_close(x.grad(), f.get(p + ".dx"), "train dx");
  expect_close(weight.grad(), f.get(p + ".dweight"), "dweight");
  expect_close(bias.grad(), f.get(p + ".dbias"), "dbias");
  expect_close(rm, f.get(p + ".running_mean"), "running_mean after 3 steps");
  expect_close(rv, f.get(p + ".running_var"), "running_var after 3 steps (unbiased)");
  Tensor xe = f.get(p + ".x_eval").requires_grad_();
  Tensor ye = batch_norm(xe, weight, bias, rm, rv, false, 0.1f, 1e-5f);
  ye.backward(f.get(p + ".dy_eval"));
  expect_close(ye, f.get(p + ".y_eval"), "eval y");
  expect_close(xe.grad(), f.get(p + ".dx_eval"), "eval dx");
}

void replay_pool(const std::string& op, const std::string& p) {
  const Fixture& f = fixture();
  std::vector<float> o = f.get(p + ".options").to_vector();
  Tensor x = f.get(p + ".x").requires_grad_();
  Tensor y;
  if (op == "adaptive_avg_pool2d") {
    y = adaptive_avg_pool2d(x, {int64_t(o[0]), int64_t(o[1])});
  } else {
    int64_t k = int64_t(o[0]), s = int64_t(o[1]), pad = int64_t(o[2]);
    Pool2dOptions opt{{k, k}, {s, s}, {pad, pad}, o[3] != 0};
    y = op == "max_pool2d" ? max_pool2d(x, opt) : avg_pool2d(x, opt);
  }
  y.backward(f.get(p + ".dy"));
  expect_close(y, f.get(p + ".y"), "y");
  expect_close(x.grad(), f.get(p + ".dx"), "dx");
}

void replay_cross_entropy(const std::string& p) {
  const Fixture& f = fixture();
  Tensor logits = f.get(p + ".logits").requires_grad_();
  std::vector<int64_t> targets;
  for (float t : f.get(p + ".targets").to_vector()) targets.push_back(static_cast<int64_t>(t));
  Tensor loss = cross_entropy(logits, targets, f.get(p + ".options").item());
  loss.backward();
  expect_close(loss, f.get(p + ".loss"), "loss");
  expect_close(logits.grad(), f.get(p + ".dlogits"), "dlogits");
}

void replay_linear(const std::string& p) {
  const Fixture& f = fixture();
  Tensor x = f.get(p + ".x").requires_grad_(), w = f.get(p + ".w").requires_grad_(), b = f.get(p + ".b").requires_grad_();
  Tensor y = linear(x, w, b);
  y.backward(f.get(p + ".dy"));
  expect_close(y, f.get(p + ".y"), "y");
  expect_close(x.grad(), f.get(p + ".dx"), "dx");
  expect_close(w.grad(), f.get(p + ".dw"), "dw");
  expect_close(b.grad(), f.get(p + ".db"), "db");
}

}  // namespace

TEST_CASE("the PyTorch fixture records how it was made and covers every golden op", "[golden]") {
  const Fixture& f = fixture();
  CHECK(f.metadata().at("generator") == "tools/gen_core_fixtures.py");
  CHECK(f.metadata().at("torch").rfind("1.13", 0) == 0);
  std::set<std::string> ops;
  for (const auto& [op, names] : f.cases()) ops.insert(op);
  CHECK(ops == std::set<std::string>{"adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "conv2d", "cross_entropy",
                                      "linear", "max_pool2d"});
}

TEST_CASE("shears matches PyTorch on every golden case", "[golden]") {
  for (const auto& [op, names] : fixture().cases())
    for (const std::string& name : names) {
      DYNAMIC_SECTION(op << "." << name) {
        std::string prefix = op + "." + name;
        if (op == "conv2d") replay_conv2d(prefix);
        else if (op == "batch_norm") replay_batch_norm(prefix);
        else if (op == "max_pool2d" || op == "avg_pool2d" || op == "adaptive_avg_pool2d") replay_pool(op, prefix);
        else if (op == "cross_entropy") replay_cross_entropy(prefix);
        else if (op == "linear") replay_linear(prefix);
        else FAIL("no replay for fixture op " << op);
      }
    }
}

}  // namespace shears
