#include "core/allocator.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/helpers.hpp"

namespace shears {

TEST_CASE("backward accumulates into leaves across uses and calls", "[autograd]") {
  Tensor x = Tensor::from_vector({3}, {1.f, 2.f, 3.f}).requires_grad_();
  Tensor y = sum(add(mul(x, x), x));  // dy/dx = 2x + 1
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{3, 5, 7});
  sum(mul(x, 2.f)).backward();  // accumulates: + 2
  CHECK(x.grad().to_vector() == std::vector<float>{5, 7, 9});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("backward takes an explicit output gradient for non-scalars", "[autograd]") {
  Tensor x = Tensor::from_vector({2}, {1.f, 2.f}).requires_grad_();
  Tensor y = mul(x, 3.f);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("scalar"));
  y.backward(Tensor::from_vector({2}, {1.f, -1.f}));
  CHECK(x.grad().to_vector() == std::vector<float>{3, -3});
}

TEST_CASE("no-grad guard and detach record nothing", "[autograd]") {
  Tensor x = Tensor::ones({2}).requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = mul(x, 2.f);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_mode_enabled());
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.shares_storage_with(x));
  Tensor z = mul(d, 2.f);
  CHECK_FALSE(z.requires_grad());
  CHECK_THROWS_AS(sum(z).backward(), Error);
}

TEST_CASE("the graph is freed after backward and a second pass is refused", "[autograd]") {
  Tensor x = Tensor::ones({4}).requires_grad_();
  Tensor h = exp(x);
  Tensor y = sum(h);
  y.backward();
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("second time"));
  // A fresh graph over the same leaf works and accumulates.
  sum(x).backward();
  CHECK(x.grad().data()[0] == Approx(std::exp(1.f) + 1.f));
}

TEST_CASE("gradients flow only to inputs that require them", "[autograd]") {
  Tensor w = Tensor::ones({3, 2}).requires_grad_();
  Tensor x = Tensor::ones({4, 2});
  Tensor y = sum(linear(x, w, Tensor()));
  y.backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
  CHECK(w.grad().to_vector() == std::vector<float>(6, 4.f));
}

TEST_CASE("a diamond graph sums the gradients of both paths", "[autograd]") {
  Tensor x = Tensor::from_vector({1}, {2.f}).requires_grad_();
  Tensor a = mul(x, 3.f), b = exp(x);
  Tensor y = sum(mul(a, b));  // d/dx (3x e^x) = 3 e^x (1 + x)
  y.backward();
  CHECK(x.grad().item() == Approx(3.f * std::exp(2.f) * 3.f));
}

TEST_CASE("the ReLU family's gradient at its kinks is PyTorch's, and relu keeps only its output", "[autograd]") {
  Tensor x = Tensor::from_vector({5}, {-1.f, 0.f, 3.f, 6.f, 7.f}).requires_grad_();
  sum(relu(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 1, 1, 1});
  x.zero_grad();
  sum(relu6(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 1, 0, 0});
  x.zero_grad();
  sum(leaky_relu(x, 0.25f)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{0.25f, 0.25f, 1, 1, 1});
  x.zero_grad();
  sum(leaky_relu(x, -0.5f)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{-0.5f, -0.5f, 1, 1, 1});

  // An intermediate input (4 MiB) is freed once relu has run: only the output stays alive.
  Tensor leaf = Tensor::ones({1 << 20}).requires_grad_();
  size_t before = live_block_bytes();
  Tensor y = relu(mul(leaf, 2.f));
  CHECK(live_block_bytes() - before == y.numel() * sizeof(float));
  y.backward(Tensor::ones(y.shape()));
  CHECK(leaf.grad().to_vector()[12345] == 2.f);
}

}  // namespace shears
