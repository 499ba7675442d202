// Sparse execution: the CSR kernels against plain loops under every ISA and thread count, the
// sparse convolution on the shared case list, the form's invariants and refusals, and whole
// models whose sparse logits and gradients equal the masked dense ones.
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/conv.hpp"
#include "core/ops.hpp"
#include "core/ops/conv2d.hpp"
#include "core/sparse.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparsify.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/masks.hpp"
#include "tests/helpers.hpp"
#include "tests/kernel_cases.hpp"

namespace shears {
namespace {

constexpr double kDensities[] = {1.0, 0.5, 0.2, 0.1, 0.05, 0.02};

// A mask keeping about `density` of the entries, one row (if there are two or more) left empty.
Tensor random_mask(const Shape& shape, double density, uint64_t seed) {
  Generator gen(seed);
  Tensor mask = Tensor::empty(shape);
  const int64_t row = numel(shape) / shape[0];
  for (int64_t i = 0; i < mask.numel(); ++i)
    mask.data()[i] = (shape[0] > 1 && i / row == 1) ? 0.f : (gen.uniform() < density ? 1.f : 0.f);
  return mask;
}

nn::SparsifyOptions sparse_options(nn::SparseMode mode, std::optional<double> max_density = std::nullopt) {
  nn::SparsifyOptions o;
  o.mode = mode, o.max_density = max_density;
  return o;
}

// Whether two tensors differ somewhere (a changed weight reached the output).
bool differs(const Tensor& a, const Tensor& b) {
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.data()[i] != b.data()[i]) return true;
  return false;
}

SparseWeight random_form(int64_t rows, int64_t cols, double density, uint64_t seed) {
  return SparseWeight::from_dense(test::random_tensor({rows, cols}, seed),
                                  random_mask({rows, cols}, density, seed + 1));
}

}  // namespace

TEST_CASE("sparse kernels match plain loops at every density, odd shapes and tails included", "[sparse][kernels]") {
  for (double density : kDensities)
    for (auto [rows, cols, P] :
         {std::tuple<int64_t, int64_t, int64_t>{7, 37, 1}, {9, 40, 5}, {16, 33, 17}, {5, 70, 67}, {33, 20, 130}}) {
      const SparseWeight s = random_form(rows, cols, density, rows * 100 + cols);
      const CsrMatrix& w = s.w();
      Tensor x = test::random_tensor({cols, P}, 3), dy = test::random_tensor({rows, P}, 4);
      std::vector<double> y_ref(rows * P, 0.0), v_ref(w.nnz(), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = w.row_ptr[r]; j < w.row_ptr[r + 1]; ++j)
          for (int64_t p = 0; p < P; ++p) {
            y_ref[r * P + p] += double(w.values[j]) * x.data()[w.col[j] * P + p];
            v_ref[j] += double(dy.data()[r * P + p]) * x.data()[w.col[j] * P + p];
          }
      test::for_each_configuration([&] {
        INFO("density " << density << ", " << rows << "x" << cols << ", P " << P);
        const kernels::Table& k = kernels::kernels();
        std::vector<float> y(rows * P, -7.f), dv(w.nnz(), 0.f), yv(rows);
        k.csr_times_dense(w.view(), 0, rows, x.data(), P, P, y.data(), P, false);
        k.csr_sampled_dots(w.view(), 0, rows, dy.data(), P, x.data(), P, P, dv.data());
        std::vector<float> x0(cols);
        for (int64_t c = 0; c < cols; ++c) x0[c] = x.data()[c * P];
        k.csr_times_vector(w.view(), 0, rows, x0.data(), yv.data());
        for (int64_t i = 0; i < rows * P; ++i) REQUIRE(std::abs(y[i] - y_ref[i]) <= 1e-5 * (1 + std::abs(y_ref[i])));
        for (int64_t r = 0; r < rows; ++r)
          REQUIRE(std::abs(yv[r] - y_ref[r * P]) <= 1e-5 * (1 + std::abs(y_ref[r * P])));
        for (int64_t j = 0; j < w.nnz(); ++j) REQUIRE(std::abs(dv[j] - v_ref[j]) <= 1e-4 * (1 + std::abs(v_ref[j])));
      });
    }
}

TEST_CASE("the transpose kernel moves every entry, blocks and edges", "[sparse][kernels]") {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {8, 8}, {13, 29}, {64, 17}, {3, 40}}) {
    Tensor a = test::random_tensor({rows, cols + 2}, 12);  // lda = cols + 2
    test::for_each_configuration([&] {
      std::vector<float> b(cols * (rows + 1), -1.f);  // ldb = rows + 1
      kernels::kernels().transpose(a.data(), cols + 2, rows, cols, b.data(), rows + 1);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) REQUIRE(b[c * (rows + 1) + r] == a.data()[r * (cols + 2) + c]);
      for (int64_t c = 0; c < cols; ++c) REQUIRE(b[c * (rows + 1) + rows] == -1.f);
    });
  }
}

TEST_CASE("the sparse form holds the kept entries, its transpose, and goes back to dense", "[sparse]") {
  Tensor w = test::random_tensor({6, 2, 3, 3}, 5), mask = random_mask({6, 2, 3, 3}, 0.3, 6);
  SparseWeight s = SparseWeight::from_dense(w, mask);
  CHECK(s.w().rows == 6);
  CHECK(s.w().cols == 18);
  CHECK(s.w().row_ptr[2] == s.w().row_ptr[1]);  // the empty row
  Tensor back = s.to_dense();
  int64_t kept = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    kept += mask.data()[i] != 0.f;
    REQUIRE(back.data()[i] == w.data()[i] * mask.data()[i]);
  }
  CHECK(s.nnz() == kept);
  CHECK(s.density() == Approx(double(kept) / w.numel()));
  for (int64_t c = 0; c < s.wt().rows; ++c)
    for (int64_t k = s.wt().row_ptr[c]; k < s.wt().row_ptr[c + 1]; ++k)
      REQUIRE(s.wt().values[k] == w.data()[s.wt().col[k] * 18 + c]);
  // Without a mask the weight's non-zeros are kept.
  CHECK(SparseWeight::from_dense(back).nnz() <= kept);
}

TEST_CASE("a CSR matrix read from a file is checked entry by entry", "[sparse][robustness]") {
  auto valid = [] { return CsrMatrix{2, 4, {0, 2, 3}, {0, 3, 1}, {1.f, 2.f, 3.f}}; };
  CHECK_NOTHROW(SparseWeight::from_csr({2, 4}, valid(), "f: fc.weight"));
  auto refused = [&](CsrMatrix m, const std::string& message) {
    CHECK_THROWS_WITH(SparseWeight::from_csr({2, 4}, m, "f: fc.weight"),
                      Catch::Contains("fc.weight") && Catch::Contains(message));
  };
  CsrMatrix m = valid();
  m.col[1] = 4;
  refused(m, "outside [0, 4)");
  m = valid();
  m.row_ptr = {0, 4, 3};
  refused(m, "decreases at row 1");
  m = valid();
  m.values.pop_back();
  refused(m, "values has 2 entries");
  m = valid();
  m.row_ptr = {0, 2};
  refused(m, "expected rows + 1");
  m = valid();
  m.col = {3, 0, 1};
  refused(m, "not strictly ascending");
  CHECK_THROWS_WITH(SparseWeight::from_csr({3, 4}, valid(), "f: fc.weight"), Catch::Contains("cannot hold"));
}

TEST_CASE("sparse convolutions equal the reference on the shared case list", "[sparse][kernels]") {
  for (const cases::ConvCase& c : cases::conv_cases()) {
    if (c.groups != 1) continue;
    Tensor x = test::random_tensor(c.input(2), 7), w = test::random_tensor(c.weight(), 8);
    Tensor mask = random_mask(c.weight(), 0.1, 9), masked = mul(w, mask);
    const ConvGeometry g = conv_geometry(x.shape(), w.shape(), c.options());
    Tensor dy = test::random_tensor({g.N, g.C_out, g.H_out, g.W_out}, 10);
    Tensor y_ref = Tensor::empty(dy.shape()), dx_ref = Tensor::empty(x.shape()), dw_ref = Tensor::empty(w.shape());
    conv2d_forward_ref(g, x.data(), masked.data(), nullptr, y_ref.data());
    conv2d_backward_input_ref(g, dy.data(), masked.data(), dx_ref.data());
    conv2d_backward_weight_ref(g, dy.data(), x.data(), dw_ref.data());
    SparseWeight s = SparseWeight::from_dense(w, mask);
    test::for_each_configuration([&] {
      INFO(c.name);
      Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::zeros(w.shape());
      std::vector<float> dv(s.nnz());
      sparse_conv2d_forward(g, s.w().view(), x.data(), nullptr, y.data());
      sparse_conv2d_backward_input(g, s.w().view(), s.wt().view(), dy.data(), dx.data());
      sparse_conv2d_backward_weight(g, s.w().view(), s.nnz(), dy.data(), x.data(), dv.data());
      s.scatter(dv.data(), dw.data());
      test::require_close(y, y_ref);
      test::require_close(dx, dx_ref);
      test::require_close(dw, mul(dw_ref, mask), 1e-4, 1e-4);
    });
  }
}

TEST_CASE("sparse results do not depend on the thread count", "[sparse][determinism]") {
  Tensor x = test::random_tensor({6, 16, 9, 9}, 11), w = test::random_tensor({24, 16, 3, 3}, 12);
  auto form = std::make_shared<SparseWeight>(SparseWeight::from_dense(w, random_mask(w.shape(), 0.2, 13)));
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tensor wl = w.clone().requires_grad_(true), xl = x.clone().requires_grad_(true);
    Tensor y = sparse_conv2d(xl, wl, form, Tensor(), {{1, 1}, {1, 1}, {1, 1}, 1});
    sum(mul(y, y)).backward();
    return std::vector<Tensor>{y.detach(), xl.grad(), wl.grad()};
  };
  const int initial = num_threads();
  auto one = run(1), two = run(2);
  set_num_threads(initial);
  for (int i = 0; i < 3; ++i) REQUIRE(std::memcmp(one[i].data(), two[i].data(), sizeof(float) * one[i].numel()) == 0);
}

TEST_CASE("sparsified models give the masked dense logits and gradients", "[sparse][models]") {
  for (auto [name, size, channels] : {std::tuple<const char*, int64_t, int64_t>{"mlpnet", 28, 1},
                                      {"resnet18", 32, 3},
                                      {"vgg11_bn", 32, 3},
                                      {"mobilenet_v1", 32, 3}}) {
    INFO(name);
    nn::ModelOptions options;
    options.input_size = size, options.in_channels = channels;
    Generator gen(21);
    auto model = nn::make_model(name, options, gen);
    prune::Scope scope;
    scope.exclude_first_and_last = true;
    std::vector<std::string> names;
    for (const std::string& n : prune::prunable_parameters(*model, scope))
      if (model->parameter(n).dim() == 2 || model->parameter(n).size(1) > 1) names.push_back(n);  // not depthwise
    prune::apply_masks(*model, prune::masks_from_scores(prune::magnitude_scores(*model, names),
                                                        {0.9, prune::Distribution::per_layer}));
    model->train(false);
    Tensor x = test::random_tensor({5, channels, size, size}, 22);  // 5: the tiled Linear path
    Tensor dense = model->forward(x).detach();
    const auto choices = nn::sparsify(*model, sparse_options(nn::SparseMode::on));
    int64_t sparse_layers = 0;
    for (const nn::SparseChoice& c : choices) sparse_layers += c.sparse;
    CHECK(sparse_layers == static_cast<int64_t>(names.size()));
    Tensor sparse = model->forward(x).detach();
    float largest = 0.f, worst = 0.f;
    for (int64_t i = 0; i < dense.numel(); ++i) {
      largest = std::max(largest, std::abs(dense.data()[i]));
      worst = std::max(worst, std::abs(dense.data()[i] - sparse.data()[i]));
    }
    CHECK(worst <= 1e-5f * largest);
    nn::densify(*model);
    CHECK(nn::sparse_bytes(*model) == 0);
  }
}

TEST_CASE("masked fine-tuning on the sparse path forms gradients at kept entries only", "[sparse]") {
  Generator gen(31);
  nn::Linear layer(20, 12, true, gen);
  Tensor mask = random_mask({12, 20}, 0.25, 32);
  layer.set_mask("weight", mask);
  Tensor x = test::random_tensor({9, 20}, 33);
  sum(mul(layer.forward(x), layer.forward(x))).backward();
  Tensor dense_grad = layer.parameter("weight").grad().clone();
  layer.zero_grad();
  nn::sparsify(layer, sparse_options(nn::SparseMode::on));
  REQUIRE(layer.sparse_form("weight"));
  sum(mul(layer.forward(x), layer.forward(x))).backward();
  test::require_close(layer.parameter("weight").grad(), dense_grad);
  layer.set_mask("weight", Tensor::ones({12, 20}));  // a new mask drops the stale form
  CHECK_FALSE(layer.sparse_form("weight"));
}

TEST_CASE("a frozen form keeps its values until the model is sparsified again", "[sparse]") {
  Generator gen(51);
  nn::Linear layer(16, 8, true, gen);
  Tensor mask = random_mask({8, 16}, 0.3, 52);
  layer.set_mask("weight", mask);
  int64_t kept = 0;
  while (mask.data()[kept] == 0.f) ++kept;
  Tensor x = test::random_tensor({6, 16}, 53);
  nn::SparsifyOptions frozen = sparse_options(nn::SparseMode::on);
  frozen.freeze = true;
  nn::sparsify(layer, frozen);
  Tensor before = layer.forward(x).detach().clone();
  layer.parameter("weight").data()[kept] += 1.f;  // not read by the frozen form
  test::require_close(layer.forward(x).detach(), before, 0, 0);
  nn::sparsify(layer, frozen);
  CHECK(differs(layer.forward(x).detach(), before));
  Tensor out = layer.forward(x);
  sum(out).backward();
  CHECK_FALSE(layer.parameter("weight").grad().defined());  // no weight gradient while frozen
}

TEST_CASE("unmasked layers run sparse only frozen; non-binary masks stay dense", "[sparse]") {
  Generator gen(61);
  nn::Linear layer(12, 6, true, gen);
  Tensor w = layer.parameter("weight");
  for (int64_t i = 0; i < w.numel(); i += 2) w.data()[i] = 0.f;                    // zeros without a mask
  CHECK_FALSE(nn::sparsify(layer, sparse_options(nn::SparseMode::on))[0].sparse);  // fine-tuning would move them
  nn::SparsifyOptions frozen = sparse_options(nn::SparseMode::on);
  frozen.freeze = true;
  CHECK(nn::sparsify(layer, frozen)[0].sparse);
  Tensor half = Tensor::ones({6, 12});
  half.data()[0] = 0.5f;
  layer.set_mask("weight", half);
  CHECK_FALSE(nn::sparsify(layer, frozen)[0].sparse);
}

TEST_CASE("--sparse modes: auto follows the table, on refuses a pruned depthwise layer", "[sparse]") {
  CHECK(nn::parse_sparse_mode("auto") == nn::SparseMode::automatic);
  CHECK_THROWS_WITH(nn::parse_sparse_mode("yes"), Catch::Contains("auto, on or off"));
  Generator gen(41);
  nn::Conv2d depthwise(4, 4, 3, {1, 1, 1, 4}, gen), dense(4, 8, 1, {}, gen);
  depthwise.set_mask("weight", random_mask({4, 1, 3, 3}, 0.5, 42));
  CHECK_THROWS_WITH(nn::sparsify(depthwise, sparse_options(nn::SparseMode::on)),
                    Catch::Contains("weight") && Catch::Contains("depthwise") && Catch::Contains("--sparse auto"));
  CHECK_FALSE(nn::sparsify(depthwise, sparse_options(nn::SparseMode::automatic))[0].sparse);
  dense.set_mask("weight", random_mask({8, 4, 1, 1}, 0.5, 43));
  const double d = nn::sparsify(dense, sparse_options(nn::SparseMode::automatic, 1.0))[0].density;
  CHECK(nn::sparsify(dense, sparse_options(nn::SparseMode::automatic, d))[0].sparse);
  CHECK_FALSE(nn::sparsify(dense, sparse_options(nn::SparseMode::automatic, d / 2))[0].sparse);
  CHECK_FALSE(nn::sparsify(dense, sparse_options(nn::SparseMode::off))[0].sparse);
}

}  // namespace shears
