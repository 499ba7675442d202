// Finite-difference gradient checks for every registered op (docs/design.md#testing).
// For each case, inputs x_i are drawn from a seeded generator, y = f(x) and a random output
// weighting r give L = Σ r·y; the analytic ∂L/∂x_i from backward(r) is compared with central
// differences (L(x + h) − L(x − h)) / 2h computed with double accumulation.
#include <algorithm>
#include <functional>
#include <set>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/sparse.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

// How a case draws its inputs: kinks are avoided so the finite differences are valid.
enum class Draw { Any, Positive, AwayFromZero, Distinct, AwayFromKinks };

struct GradCase {
  std::string op;  // registered op name this case covers
  std::string label;
  std::vector<Shape> shapes;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  Draw draw = Draw::Any;
  std::vector<float> kinks = {0.f};  // for Draw::AwayFromKinks
};

// A sparse form of w keeping every third entry (the finite differences of the others are zero).
std::shared_ptr<SparseWeight> sparse_form(const Tensor& w) {
  Tensor mask = Tensor::empty(w.shape());
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data()[i] = i % 3 == 1 ? 0.f : 1.f;
  return std::make_shared<SparseWeight>(SparseWeight::from_dense(w.detach(), mask));
}

Tensor draw_input(const Shape& shape, Draw draw, const std::vector<float>& kinks, uint64_t seed) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  int64_t n = t.numel();
  switch (draw) {
    case Draw::Any:
      for (int64_t i = 0; i < n; ++i) p[i] = 2.f * gen.uniform() - 1.f;
      break;
    case Draw::Positive:
      for (int64_t i = 0; i < n; ++i) p[i] = 0.5f + 1.5f * gen.uniform();
      break;
    case Draw::AwayFromZero:
      for (int64_t i = 0; i < n; ++i) p[i] = (0.5f + gen.uniform()) * (gen.uniform() < 0.5f ? -1.f : 1.f);
      break;
    case Draw::Distinct: {  // a shuffled ladder with steps far wider than the FD step
      std::vector<int64_t> order(n);
      for (int64_t i = 0; i < n; ++i) order[i] = i;
      for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[gen.randint(i + 1)]);
      for (int64_t i = 0; i < n; ++i) p[i] = 0.05f * static_cast<float>(order[i] - n / 2);
      break;
    }
    case Draw::AwayFromKinks:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        do {
          v = -2.f + 10.f * gen.uniform();
        } while (std::any_of(kinks.begin(), kinks.end(), [v](float k) { return std::abs(v - k) < 0.05f; }));
        p[i] = v;
      }
      break;
  }
  return t;
}

double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data()[i]) * r.data()[i];
  return s;
}

void check_case(const GradCase& c) {
  INFO("op " << c.op << " — " << c.label);
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < c.shapes.size(); ++i)
    inputs.push_back(draw_input(c.shapes[i], c.draw, c.kinks, 1000 + i).requires_grad_());
  Tensor y = c.f(inputs);
  Tensor r = test::random_tensor(y.shape(), 7);
  y.backward(r);

  constexpr float h = 1e-2f;
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("input " << i << " of shape " << to_string(inputs[i].shape()));
    REQUIRE(inputs[i].grad().defined());
    Tensor analytic = inputs[i].grad();
    std::vector<double> numeric(inputs[i].numel());
    NoGradGuard no_grad;
    for (int64_t k = 0; k < inputs[i].numel(); ++k) {
      float& v = inputs[i].data()[k];
      float saved = v;
      v = saved + h;
      double up = weighted_sum(c.f(inputs), r);
      v = saved - h;
      double down = weighted_sum(c.f(inputs), r);
      v = saved;
      numeric[k] = (up - down) / (2.0 * h);
    }
    double diff = 0.0, norm = 0.0, worst = 0.0;
    for (int64_t k = 0; k < inputs[i].numel(); ++k) {
      double d = analytic.data()[k] - numeric[k];
      diff += d * d;
      norm += numeric[k] * numeric[k];
      worst = std::max(worst, std::abs(d) / (1e-2 + 5e-2 * std::abs(numeric[k])));
    }
    CHECK(std::sqrt(diff) <= 1e-2 * std::max(std::sqrt(norm), 1.0));
    CHECK(worst <= 1.0);
  }
}

// Fixed class targets for the loss cases.
const std::vector<int64_t> kTargets = {2, 0, 4, 1, 3};

std::vector<GradCase> all_cases() {
  using V = const std::vector<Tensor>&;
  auto unary = [](const char* op, std::function<Tensor(const Tensor&)> f, Draw d = Draw::Any,
                  std::vector<float> kinks = {0.f}) {
    return GradCase{op, "odd shape (3,5,7)", {{3, 5, 7}}, [f](V x) { return f(x[0]); }, d, kinks};
  };
  Conv2dOptions stride2{{2, 2}, {1, 1}, {1, 1}, 1};
  Conv2dOptions dilated{{1, 2}, {2, 1}, {2, 1}, 1};
  Conv2dOptions grouped{{1, 1}, {1, 1}, {1, 1}, 2};
  Conv2dOptions depthwise{{1, 1}, {1, 1}, {1, 1}, 4};
  Pool2dOptions pool2{{2, 2}, {2, 2}, {0, 0}, true};
  Pool2dOptions pool3{{3, 3}, {2, 2}, {1, 1}, true};
  Pool2dOptions pool3_exclude{{3, 3}, {2, 2}, {1, 1}, false};
  return {
      {"add", "broadcast (2,3,4)+(3,1)", {{2, 3, 4}, {3, 1}}, [](V x) { return add(x[0], x[1]); }},
      {"add", "same shape", {{4, 5}, {4, 5}}, [](V x) { return add(x[0], x[1]); }},
      {"sub", "broadcast (4,1)-(1,5)", {{4, 1}, {1, 5}}, [](V x) { return sub(x[0], x[1]); }},
      {"mul", "broadcast scalar tensor", {{2, 3, 5}, {}}, [](V x) { return mul(x[0], x[1]); }},
      {"mul", "broadcast (3,1,5)*(4,1)", {{3, 1, 5}, {4, 1}}, [](V x) { return mul(x[0], x[1]); }},
      {"div", "broadcast (2,3)/(3)", {{2, 3}, {3}}, [](V x) { return div(x[0], x[1]); }, Draw::AwayFromZero},
      {"add_scalar", "x + 3", {{7}}, [](V x) { return add(x[0], 3.f); }},
      {"mul_scalar", "x * -2.5", {{2, 7}}, [](V x) { return mul(x[0], -2.5f); }},
      unary("neg", [](const Tensor& x) { return neg(x); }),
      unary("exp", [](const Tensor& x) { return exp(x); }),
      unary(
          "log", [](const Tensor& x) { return log(x); }, Draw::Positive),
      unary(
          "sqrt", [](const Tensor& x) { return sqrt(x); }, Draw::Positive),
      unary(
          "pow", [](const Tensor& x) { return pow(x, 2.5f); }, Draw::Positive),
      unary(
          "abs", [](const Tensor& x) { return abs(x); }, Draw::AwayFromKinks),
      unary("clamp", [](const Tensor& x) { return clamp(x, -0.5f, 2.f); }, Draw::AwayFromKinks, {-0.5f, 2.f}),
      unary(
          "relu", [](const Tensor& x) { return relu(x); }, Draw::AwayFromKinks),
      unary("relu6", [](const Tensor& x) { return relu6(x); }, Draw::AwayFromKinks, {0.f, 6.f}),
      unary(
          "leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1f); }, Draw::AwayFromKinks),
      {"leaky_relu",
       "negative slope (backward from the input)",
       {{3, 5, 7}},
       [](V x) { return leaky_relu(x[0], -0.3f); },
       Draw::AwayFromKinks,
       {0.f}},
      unary("sigmoid", [](const Tensor& x) { return sigmoid(x); }),
      unary("tanh", [](const Tensor& x) { return tanh(x); }),
      {"dropout",
       "p=0.3, fixed seed",
       {{4, 9}},
       [](V x) {
         Generator gen(5);
         return dropout(x[0], 0.3f, true, gen);
       }},
      {"sum", "all", {{3, 4, 5}}, [](V x) { return sum(x[0]); }},
      {"sum",
       "dims {0,2} keepdim",
       {{3, 4, 5}},
       [](V x) {
         return sum(x[0], {0, 2}, true);
       }},
      {"sum", "dim -1", {{3, 4, 5}}, [](V x) { return sum(x[0], {-1}); }},
      {"mean", "all", {{3, 4, 5}}, [](V x) { return mean(x[0]); }},
      {"mean", "dim 1", {{3, 4, 5}}, [](V x) { return mean(x[0], {1}); }},
      {"max", "all", {{3, 4, 5}}, [](V x) { return max(x[0]); }, Draw::Distinct},
      {"max", "dim 1 keepdim", {{3, 4, 5}}, [](V x) { return max(x[0], 1, true); }, Draw::Distinct},
      {"matmul", "(3,5)x(5,4)", {{3, 5}, {5, 4}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", "batched (2,3,5)x(2,5,1)", {{2, 3, 5}, {2, 5, 1}}, [](V x) { return matmul(x[0], x[1]); }},
      {"linear", "batch 1 with bias", {{1, 6}, {4, 6}, {4}}, [](V x) { return linear(x[0], x[1], x[2]); }},
      {"linear", "batch 5 no bias", {{5, 7}, {3, 7}}, [](V x) { return linear(x[0], x[1], Tensor()); }},
      {"conv2d",
       "3x3 pad 1 with bias",
       {{2, 3, 5, 6}, {4, 3, 3, 3}, {4}},
       [](V x) {
         return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 1}, {1, 1}, 1});
       }},
      {"conv2d",
       "3x3 pad 1 on a map 9 wide (the direct kernel)",
       {{2, 3, 4, 9}, {5, 3, 3, 3}, {5}},
       [](V x) {
         return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 1}, {1, 1}, 1});
       }},
      {"conv2d",
       "stride 2 with an output 9 wide (the direct kernel)",
       {{1, 2, 5, 17}, {3, 2, 3, 3}},
       [stride2](V x) { return conv2d(x[0], x[1], Tensor(), stride2); }},
      {"conv2d",
       "stride 2, batch 1",
       {{1, 2, 7, 7}, {3, 2, 3, 3}},
       [stride2](V x) { return conv2d(x[0], x[1], Tensor(), stride2); }},
      {"conv2d",
       "dilation (2,1), stride (1,2)",
       {{1, 2, 7, 6}, {2, 2, 3, 2}},
       [dilated](V x) { return conv2d(x[0], x[1], Tensor(), dilated); }},
      {"conv2d",
       "groups 2",
       {{2, 4, 5, 5}, {6, 2, 3, 3}, {6}},
       [grouped](V x) { return conv2d(x[0], x[1], x[2], grouped); }},
      {"conv2d",
       "depthwise 4 channels",
       {{2, 4, 5, 4}, {4, 1, 3, 3}},
       [depthwise](V x) { return conv2d(x[0], x[1], Tensor(), depthwise); }},
      {"conv2d",
       "depthwise on rows 8 wide",
       {{1, 4, 3, 8}, {4, 1, 3, 3}},
       [depthwise](V x) { return conv2d(x[0], x[1], Tensor(), depthwise); }},
      {"conv2d", "1x1 pointwise", {{2, 5, 3, 3}, {3, 5, 1, 1}}, [](V x) { return conv2d(x[0], x[1], Tensor()); }},
      {"sparse_linear",
       "batch 1 with bias (vector path)",
       {{1, 9}, {5, 9}, {5}},
       [](V x) { return sparse_linear(x[0], x[1], sparse_form(x[1]), x[2]); }},
      {"sparse_linear",
       "batch 6 no bias (tiled path)",
       {{6, 7}, {4, 7}},
       [](V x) { return sparse_linear(x[0], x[1], sparse_form(x[1]), Tensor()); }},
      {"sparse_conv2d",
       "3x3 pad 1 with bias",
       {{2, 3, 5, 6}, {4, 3, 3, 3}, {4}},
       [](V x) {
         return sparse_conv2d(x[0], x[1], sparse_form(x[1]), x[2], {{1, 1}, {1, 1}, {1, 1}, 1});
       }},
      {"sparse_conv2d",
       "stride 2, dilation 2",
       {{1, 2, 9, 8}, {3, 2, 3, 3}},
       [](V x) {
         return sparse_conv2d(x[0], x[1], sparse_form(x[1]), Tensor(), {{2, 2}, {1, 1}, {2, 2}, 1});
       }},
      {"sparse_conv2d",
       "1x1 batch 1 and batch 3",
       {{3, 5, 2, 3}, {4, 5, 1, 1}},
       [](V x) { return sparse_conv2d(x[0], x[1], sparse_form(x[1]), Tensor()); }},
      {"max_pool2d",
       "2x2 stride 2, odd size",
       {{2, 3, 5, 5}},
       [pool2](V x) { return max_pool2d(x[0], pool2); },
       Draw::Distinct},
      {"max_pool2d",
       "3x3 stride 2 pad 1",
       {{1, 2, 6, 7}},
       [pool3](V x) { return max_pool2d(x[0], pool3); },
       Draw::Distinct},
      {"avg_pool2d", "2x2 stride 2", {{2, 3, 4, 6}}, [pool2](V x) { return avg_pool2d(x[0], pool2); }},
      {"avg_pool2d",
       "3x3 pad 1 excluding padding",
       {{1, 2, 5, 5}},
       [pool3_exclude](V x) { return avg_pool2d(x[0], pool3_exclude); }},
      {"adaptive_avg_pool2d",
       "7x5 -> 3x2",
       {{2, 2, 7, 5}},
       [](V x) {
         return adaptive_avg_pool2d(x[0], {3, 2});
       }},
      {"adaptive_avg_pool2d",
       "global",
       {{2, 3, 4, 4}},
       [](V x) {
         return adaptive_avg_pool2d(x[0], {1, 1});
       }},
      {"batch_norm",
       "train 4-D",
       {{3, 2, 3, 2}, {2}, {2}},
       [](V x) {
         Tensor rm = Tensor::zeros({2}), rv = Tensor::ones({2});
         return batch_norm(x[0], x[1], x[2], rm, rv, true);
       }},
      {"batch_norm",
       "train 2-D no affine",
       {{5, 3}},
       [](V x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true); }},
      {"batch_norm",
       "eval 4-D",
       {{2, 3, 2, 2}, {3}, {3}},
       [](V x) {
         Tensor rm = Tensor::from_vector({3}, {0.1f, -0.2f, 0.3f}), rv = Tensor::from_vector({3}, {0.5f, 1.5f, 2.f});
         return batch_norm(x[0], x[1], x[2], rm, rv, false);
       }},
      {"reshape",
       "(3,4,2) -> (-1,6)",
       {{3, 4, 2}},
       [](V x) {
         return reshape(x[0], {-1, 6});
       }},
      {"flatten", "from dim 1", {{2, 3, 2, 2}}, [](V x) { return flatten(x[0]); }},
      {"transpose", "dims 0,2", {{2, 3, 4}}, [](V x) { return transpose(x[0], 0, 2); }},
      {"permute",
       "(2,0,1)",
       {{2, 3, 4}},
       [](V x) {
         return permute(x[0], {2, 0, 1});
       }},
      {"concat",
       "dim 1",
       {{2, 3, 2}, {2, 1, 2}, {2, 2, 2}},
       [](V x) {
         return concat({x[0], x[1], x[2]}, 1);
       }},
      {"slice", "dim 1 step 2", {{3, 7, 2}}, [](V x) { return slice(x[0], 1, 1, 6, 2); }},
      {"softmax", "dim 1 of 3-D", {{2, 4, 3}}, [](V x) { return softmax(x[0], 1); }},
      {"log_softmax", "last dim", {{3, 5}}, [](V x) { return log_softmax(x[0], -1); }},
      {"cross_entropy", "5 samples", {{5, 6}}, [](V x) { return cross_entropy(x[0], kTargets); }},
      {"cross_entropy", "label smoothing 0.1", {{5, 6}}, [](V x) { return cross_entropy(x[0], kTargets, 0.1f); }},
      {"nll_loss", "of log_softmax", {{5, 5}}, [](V x) { return nll_loss(log_softmax(x[0], 1), kTargets); }},
      {"mse_loss", "both inputs", {{3, 4}, {3, 4}}, [](V x) { return mse_loss(x[0], x[1]); }},
  };
}

TEST_CASE("every registered op has a finite-difference gradient check", "[gradcheck]") {
  std::set<std::string> covered;
  for (const GradCase& c : all_cases()) covered.insert(c.op);
  REQUIRE(registered_ops().size() > 30);
  for (const OpInfo& op : registered_ops()) {
    INFO("op without a gradient check: " << op.name);
    CHECK(covered.count(op.name) == 1);
  }
}

TEST_CASE("finite-difference gradient checks", "[gradcheck]") {
  for (const GradCase& c : all_cases()) {
    DYNAMIC_SECTION(c.op << ": " << c.label) { check_case(c); }
  }
}

}  // namespace
}  // namespace shears
