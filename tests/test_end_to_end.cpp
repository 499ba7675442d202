// Small end-to-end trainings on the raw ops: the engine learns.
#include <cmath>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/random.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

void sgd_step(std::vector<Tensor>& params, float lr) {
  NoGradGuard no_grad;
  for (Tensor& p : params) {
    float* w = p.data();
    const float* g = p.grad().data();
    for (int64_t i = 0; i < p.numel(); ++i) w[i] -= lr * g[i];
    p.zero_grad();
  }
}

double accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  Tensor pred = max(logits, 1);
  int64_t correct = 0, C = logits.size(1);
  for (int64_t n = 0; n < logits.size(0); ++n)
    correct += logits.data()[n * C + labels[n]] == pred.data()[n];
  return static_cast<double>(correct) / static_cast<double>(logits.size(0));
}

Tensor kaiming_uniform(const Shape& shape, int64_t fan_in, Generator& gen) {
  float bound = std::sqrt(6.f / static_cast<float>(fan_in));
  return Tensor::rand(shape, -bound, bound, gen).requires_grad_();
}

}  // namespace

TEST_CASE("a 2-layer MLP trained with SGD separates a synthetic 3-class problem", "[e2e]") {
  // Three Gaussian blobs in 8-D with well-separated means.
  Generator gen(1);
  const int64_t N = 600, D = 8, H = 32, C = 3;
  Tensor x = Tensor::randn({N, D}, gen, 0.f, 0.5f);
  std::vector<int64_t> y(N);
  for (int64_t n = 0; n < N; ++n) {
    y[n] = n % C;
    x.data()[n * D + y[n]] += 2.f;
  }
  Tensor w1 = kaiming_uniform({H, D}, D, gen), b1 = Tensor::zeros({H}).requires_grad_();
  Tensor w2 = kaiming_uniform({C, H}, H, gen), b2 = Tensor::zeros({C}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2};
  auto forward = [&] { return linear(relu(linear(x, w1, b1)), w2, b2); };
  float first_loss = 0.f;
  for (int step = 0; step < 200; ++step) {
    Tensor loss = cross_entropy(forward(), y);
    if (step == 0) first_loss = loss.item();
    loss.backward();
    sgd_step(params, 0.1f);
  }
  NoGradGuard no_grad;
  Tensor logits = forward();
  CHECK(cross_entropy(logits, y).item() < 0.1f * first_loss);
  CHECK(accuracy(logits, y) >= 0.99);
}

TEST_CASE("a small conv + batch-norm + pool network overfits 64 samples", "[e2e]") {
  Generator gen(2);
  const int64_t N = 64, C = 4;
  Tensor x = Tensor::randn({N, 1, 8, 8}, gen);
  std::vector<int64_t> y(N);
  for (int64_t n = 0; n < N; ++n) y[n] = gen.randint(C);
  Tensor conv_w = kaiming_uniform({8, 1, 3, 3}, 9, gen);
  Tensor bn_w = Tensor::ones({8}).requires_grad_(), bn_b = Tensor::zeros({8}).requires_grad_();
  Tensor rm = Tensor::zeros({8}), rv = Tensor::ones({8});
  Tensor fc_w = kaiming_uniform({C, 8 * 4 * 4}, 128, gen), fc_b = Tensor::zeros({C}).requires_grad_();
  std::vector<Tensor> params{conv_w, bn_w, bn_b, fc_w, fc_b};
  auto forward = [&](bool training) {
    Tensor h = conv2d(x, conv_w, Tensor(), {{1, 1}, {1, 1}, {1, 1}, 1});
    h = relu(batch_norm(h, bn_w, bn_b, rm, rv, training));
    h = max_pool2d(h, {{2, 2}, {2, 2}, {0, 0}, true});
    return linear(flatten(h), fc_w, fc_b);
  };
  for (int step = 0; step < 400; ++step) {
    Tensor loss = cross_entropy(forward(true), y);
    loss.backward();
    sgd_step(params, 0.1f);
  }
  NoGradGuard no_grad;
  Tensor logits = forward(true);
  CHECK(cross_entropy(logits, y).item() < 0.05f);
  CHECK(accuracy(logits, y) == 1.0);
}

}  // namespace shears
