// prune/per_sample: per-sample gradients equal a loop of single-sample backwards
// (docs/algorithms/swap.md#per-sample-gradients).
#include <catch2/catch.hpp>

#include "core/ops.hpp"
#include "helpers.hpp"
#include "nn/layers.hpp"
#include "prune/per_sample.hpp"

using namespace shears;

TEST_CASE("per-sample gradients equal single-sample backwards, in blocks, with masks", "[prune]") {
  Generator gen(2);
  auto model = nn::sequential(
      {std::make_shared<nn::Conv2d>(2, 3, 3, nn::Conv2dConfig{.stride = 2, .padding = 1}, gen),
       std::make_shared<nn::BatchNorm2d>(3), std::make_shared<nn::ReLU>(),
       std::make_shared<nn::Conv2d>(3, 3, 3, nn::Conv2dConfig{.padding = 1, .groups = 3}, gen),
       std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(3 * 3 * 3, 4, true, gen)});
  model->get<nn::BatchNorm2d>("1").buffer("running_var").fill_(0.7f);
  model->set_mask("6.weight", test::random_tensor({4, 27}, 3, 0.f, 1.f));  // fractional values: any mask
  std::vector<std::string> names{"0.weight", "3.weight", "6.weight"};
  int64_t n = 5, p = 3 * 2 * 9 + 3 * 9 + 4 * 27;
  Tensor x = test::random_tensor({n, 2, 5, 5}, 4);
  std::vector<int64_t> y{0, 3, 1, 2, 3};

  Tensor G = prune::per_sample_gradients(*model, names, x, y, 2);
  REQUIRE(G.shape() == Shape{n, p});
  CHECK(model->is_training());
  CHECK_FALSE(model->parameter("0.weight").grad().defined());

  model->eval();
  Tensor mean_grad = Tensor::zeros({p});
  for (int64_t i = 0; i < n; ++i) {
    model->zero_grad();
    cross_entropy((*model)(x.rows(i, i + 1)), {y[i]}).backward();
    std::vector<float> row;
    for (auto& name : names) {
      auto g = model->parameter(name).grad().to_vector();
      row.insert(row.end(), g.begin(), g.end());
    }
    test::require_close(G.rows(i, i + 1).view({p}), Tensor::from_vector({p}, row), 1e-6, 1e-4);
  }
  // The mean of the rows is the gradient of the mean loss over the n samples.
  model->zero_grad();
  cross_entropy((*model)(x), y).backward();
  std::vector<float> full;
  for (auto& name : names) {
    auto g = model->parameter(name).grad().to_vector();
    full.insert(full.end(), g.begin(), g.end());
  }
  test::require_close(mean(G, {0}), Tensor::from_vector({p}, full), 1e-6, 1e-4);
  CHECK_THROWS_AS(prune::per_sample_gradients(*model, {"1.weight"}, x, y), Error);
}
