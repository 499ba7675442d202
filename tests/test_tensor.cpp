#include <cstdint>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/random.hpp"
#include "tests/helpers.hpp"

namespace shears {

TEST_CASE("tensors are contiguous, aligned, and report shape and strides", "[tensor]") {
  Tensor t = Tensor::zeros({2, 3, 4});
  CHECK(t.dim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.size(-1) == 4);
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  CHECK_THROWS_AS(t.size(3), Error);
  CHECK(Tensor::scalar(2.5f).dim() == 0);
  CHECK(Tensor::scalar(2.5f).item() == 2.5f);
  CHECK_THROWS_AS(t.item(), Error);
  CHECK_THROWS_AS(Tensor::from_vector({2, 2}, {1.f, 2.f, 3.f}), Error);
  CHECK_THROWS_AS(Tensor::empty({2, -1}), Error);
}

TEST_CASE("views share storage; clone does not", "[tensor]") {
  Tensor t = Tensor::arange(12);
  Tensor v = reshape(t, {3, -1});
  CHECK(v.shape() == Shape{3, 4});
  CHECK(v.shares_storage_with(t));
  v.data()[5] = 100.f;
  CHECK(t.data()[5] == 100.f);
  Tensor f = flatten(reshape(t, {2, 3, 2}));
  CHECK(f.shape() == Shape{2, 6});
  CHECK(f.shares_storage_with(t));
  Tensor r = t.rows(3, 7);
  CHECK(r.numel() == 4);
  CHECK(r.data()[0] == 3.f);
  Tensor c = t.clone();
  CHECK_FALSE(c.shares_storage_with(t));
  c.data()[0] = -1.f;
  CHECK(t.data()[0] == 0.f);
  CHECK_THROWS_WITH(reshape(t, {5, -1}), Catch::Contains("reshape") && Catch::Contains("[12]"));
}

TEST_CASE("random draws are reproducible for a seed and differ across seeds", "[tensor][random]") {
  Generator a(42), b(42), c(43);
  Tensor x = Tensor::randn({1000}, a), y = Tensor::randn({1000}, b), z = Tensor::randn({1000}, c);
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  double mean = 0, var = 0;
  for (float v : x.to_vector()) mean += v;
  mean /= 1000;
  for (float v : x.to_vector()) var += (v - mean) * (v - mean);
  var /= 1000;
  CHECK(std::abs(mean) < 0.1);
  CHECK(std::abs(var - 1.0) < 0.1);
  Tensor u = Tensor::rand({1000}, -2.f, 3.f, a);
  for (float v : u.to_vector()) REQUIRE((v >= -2.f && v < 3.f));
  manual_seed(7);
  float first = default_generator().uniform();
  manual_seed(7);
  CHECK(default_generator().uniform() == first);
}

TEST_CASE("broadcasting follows NumPy rules and rejects incompatible shapes", "[tensor][ops]") {
  Tensor a = Tensor::from_vector({2, 1}, {1.f, 2.f});
  Tensor b = Tensor::from_vector({3}, {10.f, 20.f, 30.f});
  Tensor c = add(a, b);
  CHECK(c.shape() == Shape{2, 3});
  CHECK(c.to_vector() == std::vector<float>{11, 21, 31, 12, 22, 32});
  CHECK_THROWS_WITH(add(Tensor::zeros({2, 3}), Tensor::zeros({4})),
                    Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
}

TEST_CASE("ops compute the values PyTorch does on small hand-checked inputs", "[tensor][ops]") {
  Tensor x = Tensor::from_vector({2, 3}, {1.f, -2.f, 3.f, 0.5f, 7.f, -1.f});
  CHECK(sum(x).item() == Approx(8.5f));
  CHECK(mean(x, {1}).to_vector() == std::vector<float>{2.f / 3.f, 6.5f / 3.f});
  CHECK(max(x).item() == 7.f);
  CHECK(max(x, 0).to_vector() == std::vector<float>{1.f, 7.f, 3.f});
  CHECK(relu6(mul(x, 2.f)).to_vector() == std::vector<float>{2, 0, 6, 1, 6, 0});
  CHECK(transpose(x, 0, 1).to_vector() == std::vector<float>{1, 0.5f, -2, 7, 3, -1});
  CHECK(slice(x, 1, -2, 3).to_vector() == std::vector<float>{-2, 3, 7, -1});
  CHECK(concat({x, x}, 0).shape() == Shape{4, 3});
  Tensor s = softmax(x, 1);
  CHECK(sum(s, {1}).to_vector()[0] == Approx(1.f));
  CHECK(clamp(x, -1.f, 1.f).to_vector() == std::vector<float>{1, -1, 1, 0.5f, 1, -1});
}

TEST_CASE("user mistakes throw shears::Error naming the op and the shapes", "[tensor][errors]") {
  Tensor x = Tensor::zeros({2, 3, 8, 8});
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor()),
                    Catch::Contains("conv2d") && Catch::Contains("[4, 2, 3, 3]"));
  CHECK_THROWS_WITH(linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}), Tensor()),
                    Catch::Contains("linear") && Catch::Contains("[2, 5]"));
  CHECK_THROWS_WITH(matmul(Tensor::zeros({2, 5}), Tensor::zeros({4, 3})), Catch::Contains("matmul"));
  CHECK_THROWS_WITH(cross_entropy(Tensor::zeros({2, 3}), {0, 3}), Catch::Contains("target 3 at index 1"));
  CHECK_THROWS_WITH(batch_norm(Tensor::zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                    Catch::Contains("more than 1 value per channel"));
  CHECK_THROWS_WITH(max_pool2d(Tensor::zeros({1, 1, 1, 1}), {}), Catch::Contains("max_pool2d"));
  CHECK_THROWS_WITH(permute(x, {0, 1, 1, 2}), Catch::Contains("repeated"));
  CHECK_THROWS_AS(sum(x, {4}), Error);
}

}  // namespace shears
