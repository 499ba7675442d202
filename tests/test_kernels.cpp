// Every fast kernel equals its reference kernel, under every instruction set this CPU supports
// and at several thread counts. Tolerances: float32 against double-accumulated references.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops/batch_norm.hpp"
#include "core/ops/conv2d.hpp"
#include "core/parallel.hpp"
#include "tests/helpers.hpp"
#include "tests/kernel_cases.hpp"

namespace shears {

using test::for_each_configuration;
using test::supported_isas;

TEST_CASE("this CPU's kernel table is chosen, and SHEARS_ISA names are known", "[kernels]") {
  CHECK(kernels::cpu_supports(kernels::Isa::Scalar));
  CHECK(kernels::table_for(kernels::Isa::Scalar).isa == kernels::Isa::Scalar);
  for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Avx512})
    if (!kernels::cpu_supports(isa)) CHECK_THROWS_AS(kernels::use_isa(isa), Error);
}

TEST_CASE("elementwise and reduction kernels match plain loops, tails included", "[kernels]") {
  for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 1000, 4097, 9000}) {
    Tensor a = test::random_tensor({n}, 1, -3.f, 8.f), b = test::random_tensor({n}, 2, 0.5f, 2.f);
    Tensor g = test::random_tensor({n}, 3);
    // Offset views start off the 64-byte boundary.
    const float* pa = a.data() + (n > 1 ? 1 : 0);
    const float* pb = b.data() + (n > 1 ? 1 : 0);
    const float* pg = g.data() + (n > 1 ? 1 : 0);
    int64_t m = n > 1 ? n - 1 : n;
    std::vector<float> out(m + 1, -99.f), expect(m);
    for (kernels::Isa isa : supported_isas()) {
      const kernels::Table& k = kernels::table_for(isa);
      INFO("isa " << kernels::isa_name(isa) << ", n " << m);
      k.binary(kernels::Binary::Div, pa, pb, out.data(), m);
      for (int64_t i = 0; i < m; ++i) expect[i] = pa[i] / pb[i];
      CHECK(test::tolerance_ratio(out.data(), expect.data(), m, 0, 1e-6) <= 1);
      CHECK(out[m] == -99.f);  // nothing written past the end
      k.binary_scalar(kernels::Binary::Sub, pa, 0.25f, out.data(), m);
      for (int64_t i = 0; i < m; ++i) expect[i] = pa[i] - 0.25f;
      CHECK(test::tolerance_ratio(out.data(), expect.data(), m, 0, 0) <= 1);
      k.relu_family(pa, out.data(), m, 0.1f, 6.f);
      for (int64_t i = 0; i < m; ++i) expect[i] = pa[i] > 0 ? std::min(pa[i], 6.f) : 0.1f * pa[i];
      CHECK(test::tolerance_ratio(out.data(), expect.data(), m, 0, 1e-6) <= 1);
      k.relu_family_backward(pa, pg, out.data(), m, 0.1f, 6.f);
      for (int64_t i = 0; i < m; ++i) expect[i] = pa[i] > 0 ? (pa[i] < 6.f ? pg[i] : 0.f) : 0.1f * pg[i];
      CHECK(test::tolerance_ratio(out.data(), expect.data(), m, 0, 1e-6) <= 1);
      double sum = 0, sq = 0, dot = 0, dotc = 0;
      for (int64_t i = 0; i < m; ++i) {
        sum += pa[i];
        sq += (pa[i] - 0.5) * (pa[i] - 0.5);
        dot += double(pa[i]) * pb[i];
        dotc += pg[i] * (pa[i] - 0.5);
      }
      CHECK(k.sum(pa, m) == Approx(sum).epsilon(1e-5).margin(1e-4));
      CHECK(k.sum_squared_deviation(pa, m, 0.5f) == Approx(sq).epsilon(1e-5));
      CHECK(k.dot(pa, pb, m) == Approx(dot).epsilon(1e-5).margin(1e-4));
      CHECK(k.dot_centered(pg, pa, m, 0.5f) == Approx(dotc).epsilon(1e-4).margin(1e-3));
    }
  }
}

TEST_CASE("mixed-precision kernels give the same bits under every ISA and match long double", "[kernels][swap]") {
  for (int64_t n : {0, 1, 3, 4, 5, 15, 16, 17, 31, 33, 64, 1001}) {
    std::vector<float> g[4];
    for (int r = 0; r < 4; ++r) {
      Tensor t = test::random_tensor({n + 1}, 10 + r, -2.f, 2.f);
      g[r].assign(t.data(), t.data() + n);
    }
    std::vector<double> x(n), a{0.3, -1.7, 2.5, 1e-3};
    for (int64_t i = 0; i < n; ++i) x[i] = std::sin(0.37 * double(i)) * 3.0 + 1e-9 * double(i);
    const float* rows[4] = {g[0].data(), g[1].data(), g[2].data(), g[3].data()};
    long double dot_ref = 0;
    std::vector<long double> y1_ref(x.begin(), x.end()), y4_ref(x.begin(), x.end());
    for (int64_t i = 0; i < n; ++i) {
      dot_ref += (long double)g[0][i] * x[i];
      y1_ref[i] += (long double)a[0] * g[0][i];
      for (int r = 0; r < 4; ++r) y4_ref[i] += (long double)a[r] * g[r][i];
    }
    const kernels::Table& scalar = kernels::table_for(kernels::Isa::Scalar);
    const double dot = scalar.dot_f32_f64(rows[0], x.data(), n);
    std::vector<double> y1 = x, y4 = x;
    scalar.axpy_f32_f64(a[0], rows[0], y1.data(), n);
    scalar.axpy4_f32_f64(a.data(), rows, y4.data(), n);
    INFO("n " << n);
    CHECK(std::abs(dot - (double)dot_ref) <= 1e-12 * (1 + std::abs((double)dot_ref)) * double(n + 1));
    for (int64_t i = 0; i < n; ++i) {
      CHECK(std::abs(y1[i] - (double)y1_ref[i]) <= 1e-14 * (1 + std::abs(y1[i])));
      CHECK(std::abs(y4[i] - (double)y4_ref[i]) <= 1e-14 * (1 + std::abs(y4[i])));
    }
    for (kernels::Isa isa : supported_isas()) {
      const kernels::Table& k = kernels::table_for(isa);
      INFO("isa " << kernels::isa_name(isa));
      const double d = k.dot_f32_f64(rows[0], x.data(), n);
      CHECK(std::memcmp(&d, &dot, sizeof d) == 0);
      std::vector<double> z1 = x, z4 = x;
      k.axpy_f32_f64(a[0], rows[0], z1.data(), n);
      k.axpy4_f32_f64(a.data(), rows, z4.data(), n);
      auto same_bits = [](double p, double q) { return std::memcmp(&p, &q, sizeof p) == 0; };
      CHECK(std::equal(z1.begin(), z1.end(), y1.begin(), same_bits));
      CHECK(std::equal(z4.begin(), z4.end(), y4.begin(), same_bits));
    }
  }
}

TEST_CASE("vector exp and log-softmax rows match libm, tails and extremes included", "[kernels]") {
  for (int64_t cols : {1, 7, 10, 17, 1000}) {
    Tensor x = test::random_tensor({3, cols}, 71, -30.f, 30.f);
    x.data()[0] = -100.f;  // below expf's range: exp underflows to 0
    std::vector<float> y(3 * cols), ref(3 * cols);
    for (kernels::Isa isa : supported_isas()) {
      const kernels::Table& k = kernels::table_for(isa);
      INFO("isa " << kernels::isa_name(isa) << ", cols " << cols);
      k.exp(x.data(), y.data(), 3 * cols);
      for (int64_t i = 0; i < 3 * cols; ++i) ref[i] = std::exp(x.data()[i]);
      CHECK(test::tolerance_ratio(y.data(), ref.data(), 3 * cols, 1e-37, 3e-7) <= 1);
      k.log_softmax_rows(x.data(), y.data(), 3, cols);
      for (int64_t r = 0; r < 3; ++r) {
        const float* xr = x.data() + r * cols;
        double m = *std::max_element(xr, xr + cols), total = 0;
        for (int64_t c = 0; c < cols; ++c) total += std::exp(double(xr[c]) - m);
        for (int64_t c = 0; c < cols; ++c) ref[r * cols + c] = static_cast<float>(xr[c] - m - std::log(total));
      }
      CHECK(test::tolerance_ratio(y.data(), ref.data(), 3 * cols, 1e-5, 1e-6) <= 1);
    }
  }
}

TEST_CASE("SGD and Adam update kernels follow torch.optim's update rules", "[kernels][optim]") {
  const int64_t n = 37;
  for (kernels::Isa isa : supported_isas()) {
    const kernels::Table& k = kernels::table_for(isa);
    INFO("isa " << kernels::isa_name(isa));
    for (bool nesterov : {false, true}) {
      Tensor p = test::random_tensor({n}, 41), buf = Tensor::zeros({n});
      std::vector<double> p_ref(p.data(), p.data() + n), buf_ref(n, 0.0);
      kernels::SgdStep step{0.1f, 0.9f, nesterov ? 0.f : 0.1f, 5e-4f, nesterov, true};
      for (int t = 0; t < 3; ++t) {
        Tensor g = test::random_tensor({n}, 50 + t);
        step.first = t == 0;
        k.sgd_step(p.data(), g.data(), buf.data(), n, step);
        for (int64_t i = 0; i < n; ++i) {
          double d = g.data()[i] + step.weight_decay * p_ref[i];
          buf_ref[i] = t == 0 ? d : step.momentum * buf_ref[i] + (1 - step.dampening) * d;
          d = nesterov ? d + step.momentum * buf_ref[i] : buf_ref[i];
          p_ref[i] -= step.lr * d;
        }
      }
      std::vector<float> expect(p_ref.begin(), p_ref.end());
      CHECK(test::tolerance_ratio(p.data(), expect.data(), n, 1e-6, 1e-5) <= 1);
    }
    for (bool decoupled : {false, true}) {
      Tensor p = test::random_tensor({n}, 42), m = Tensor::zeros({n}), v = Tensor::zeros({n});
      std::vector<double> p_ref(p.data(), p.data() + n), m_ref(n, 0.0), v_ref(n, 0.0);
      kernels::AdamStep step{1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f, decoupled, 0};
      for (int t = 1; t <= 3; ++t) {
        Tensor g = test::random_tensor({n}, 60 + t);
        step.step = t;
        k.adam_step(p.data(), g.data(), m.data(), v.data(), n, step);
        for (int64_t i = 0; i < n; ++i) {
          double gi = g.data()[i];
          if (decoupled) p_ref[i] *= 1 - step.lr * step.weight_decay;
          else gi += step.weight_decay * p_ref[i];
          m_ref[i] = step.beta1 * m_ref[i] + (1 - step.beta1) * gi;
          v_ref[i] = step.beta2 * v_ref[i] + (1 - step.beta2) * gi * gi;
          double denom = std::sqrt(v_ref[i]) / std::sqrt(1 - std::pow(step.beta2, t)) + step.eps;
          p_ref[i] -= step.lr / (1 - std::pow(step.beta1, t)) * m_ref[i] / denom;
        }
      }
      std::vector<float> expect(p_ref.begin(), p_ref.end());
      CHECK(test::tolerance_ratio(p.data(), expect.data(), n, 1e-6, 1e-5) <= 1);
    }
  }
}

TEST_CASE("the case list names the path the engine chooses for each pass, and covers every path", "[kernels][conv2d]") {
  std::set<std::string> seen;
  for (const cases::ConvCase& c : cases::conv_cases()) {
    INFO("case " << c.name);
    const ConvGeometry g = conv_geometry(c.input(1), c.weight(), c.options());
    std::string chosen;
    for (ConvPass pass : {ConvPass::forward, ConvPass::input_gradient, ConvPass::weight_gradient}) {
      const char* name = conv_path_name(conv_path(g, pass));
      if (!chosen.empty()) chosen += ' ';
      chosen += name;
      seen.insert(name);
      // The batch never changes the path: it depends on the layer's shape only.
      CHECK(conv_path(conv_geometry(c.input(7), c.weight(), c.options()), pass) == conv_path(g, pass));
    }
    CHECK(chosen == c.paths);
  }
  CHECK(seen == std::set<std::string>{"gemm", "depthwise3x3", "direct3x3", "direct3x3-parity"});
}

TEST_CASE("a forced conv path runs wherever it applies and still equals the reference", "[kernels][conv2d]") {
  const ConvPath paths[] = {ConvPath::gemm, ConvPath::depthwise3x3, ConvPath::direct3x3, ConvPath::direct3x3_parity};
  for (ConvPath forced : paths)
    for (const cases::ConvCase& c : cases::conv_cases()) {
      INFO("forced " << conv_path_name(forced) << ", case " << c.name);
      const ConvGeometry g = conv_geometry(c.input(2), c.weight(), c.options());
      force_conv_path(forced);
      for (ConvPass pass : {ConvPass::forward, ConvPass::input_gradient, ConvPass::weight_gradient}) {
        force_conv_path(std::nullopt);
        const ConvPath rule = conv_path(g, pass);
        force_conv_path(forced);
        CHECK(conv_path(g, pass) == (conv_path_supports(forced, g, pass) ? forced : rule));
      }
      CHECK(conv_path_supports(ConvPath::gemm, g, ConvPass::forward));
      Tensor x = test::random_tensor(c.input(2), 21), w = test::random_tensor(c.weight(), 22);
      Tensor dy = test::random_tensor({2, c.C_out, g.H_out, g.W_out}, 23);
      Tensor y_ref = Tensor::empty(dy.shape()), dx_ref = Tensor::empty(x.shape()), dw_ref = Tensor::empty(w.shape());
      conv2d_forward_ref(g, x.data(), w.data(), nullptr, y_ref.data());
      conv2d_backward_input_ref(g, dy.data(), w.data(), dx_ref.data());
      conv2d_backward_weight_ref(g, dy.data(), x.data(), dw_ref.data());
      Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
      conv2d_forward(g, x.data(), w.data(), nullptr, y.data());
      conv2d_backward(g, dy.data(), x.data(), w.data(), dx.data(), dw.data());
      force_conv_path(std::nullopt);
      test::require_close(y, y_ref, 1e-4, 1e-4);
      test::require_close(dx, dx_ref, 1e-4, 1e-4);
      test::require_close(dw, dw_ref, 1e-3, 1e-4);
    }
  CHECK(!forced_conv_path());
}

TEST_CASE("conv2d fast kernels equal the reference on the shared case list", "[kernels][conv2d]") {
  for (const cases::ConvCase& c : cases::conv_cases()) {
    for (int64_t N : {int64_t{1}, int64_t{2}}) {
      INFO("case " << c.name << ", batch " << N);
      ConvGeometry g = conv_geometry(c.input(N), c.weight(), c.options());
      Tensor x = test::random_tensor(c.input(N), 11), w = test::random_tensor(c.weight(), 12);
      Tensor bias = test::random_tensor({c.C_out}, 13);
      Tensor dy = test::random_tensor({N, c.C_out, g.H_out, g.W_out}, 14);
      Tensor y_ref = Tensor::empty(dy.shape()), dx_ref = Tensor::empty(x.shape()), dw_ref = Tensor::empty(w.shape());
      conv2d_forward_ref(g, x.data(), w.data(), bias.data(), y_ref.data());
      conv2d_backward_input_ref(g, dy.data(), w.data(), dx_ref.data());
      conv2d_backward_weight_ref(g, dy.data(), x.data(), dw_ref.data());
      for_each_configuration([&] {
        Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
        conv2d_forward(g, x.data(), w.data(), bias.data(), y.data());
        conv2d_backward_input(g, dy.data(), w.data(), dx.data());
        conv2d_backward_weight(g, dy.data(), x.data(), dw.data());
        test::require_close(y, y_ref, 1e-4, 1e-4);
        test::require_close(dx, dx_ref, 1e-4, 1e-4);
        test::require_close(dw, dw_ref, 1e-3, 1e-4);
        Tensor dx_both = Tensor::empty(x.shape()), dw_both = Tensor::empty(w.shape());
        conv2d_backward(g, dy.data(), x.data(), w.data(), dx_both.data(), dw_both.data());  // one pass (depthwise)
        test::require_close(dx_both, dx_ref, 1e-4, 1e-4);
        test::require_close(dw_both, dw_ref, 1e-3, 1e-4);
      });
    }
  }
}

TEST_CASE("merge_even_odd interleaves the even and the odd columns of a row", "[kernels]") {
  for (int64_t n : {1, 2, 7, 16, 17, 33, 64}) {
    INFO("n " << n);
    std::vector<float> even((n + 1) / 2), odd(n / 2), x(n + 1);
    for (size_t i = 0; i < even.size(); ++i) even[i] = static_cast<float>(2 * i);
    for (size_t i = 0; i < odd.size(); ++i) odd[i] = static_cast<float>(2 * i + 1);
    for_each_configuration([&] {
      std::fill(x.begin(), x.end(), -1.f);
      kernels::kernels().merge_even_odd(even.data(), odd.data(), n, x.data());
      for (int64_t i = 0; i < n; ++i) REQUIRE(x[i] == static_cast<float>(i));
      REQUIRE(x[n] == -1.f);  // nothing written past the row
    });
  }
}

TEST_CASE("batch norm fast kernels equal the reference", "[kernels][batch_norm]") {
  for (BnShape s : {BnShape{4, 3, 25}, BnShape{2, 64, 64}, BnShape{7, 5, 1}, BnShape{1, 2, 33}}) {
    INFO("N " << s.N << " C " << s.C << " L " << s.L);
    Tensor x = test::random_tensor({s.N, s.C, s.L}, 21, -2.f, 5.f), dy = test::random_tensor({s.N, s.C, s.L}, 22);
    Tensor gamma = test::random_tensor({s.C}, 23), rstd = test::random_tensor({s.C}, 24, 0.5f, 2.f);
    Tensor mean_ref = Tensor::empty({s.C}), var_ref = Tensor::empty({s.C});
    batch_norm_stats_ref(s, x.data(), mean_ref.data(), var_ref.data());
    Tensor y_ref = Tensor::empty(x.shape());
    batch_norm_apply_ref(s, x.data(), gamma.data(), rstd.data(), y_ref.data());
    for_each_configuration([&] {
      Tensor mean = Tensor::empty({s.C}), var = Tensor::empty({s.C}), y = Tensor::empty(x.shape());
      batch_norm_stats(s, x.data(), mean.data(), var.data());
      test::require_close(mean, mean_ref, 1e-6, 1e-5);
      test::require_close(var, var_ref, 1e-6, 1e-5);
      batch_norm_apply(s, x.data(), gamma.data(), rstd.data(), y.data());
      test::require_close(y, y_ref, 1e-6, 1e-6);
      for (bool training : {true, false}) {
        Tensor dx = Tensor::empty(x.shape()), dg = Tensor::empty({s.C}), db = Tensor::empty({s.C});
        Tensor dx_r = Tensor::empty(x.shape()), dg_r = Tensor::empty({s.C}), db_r = Tensor::empty({s.C});
        batch_norm_backward(s, x.data(), dy.data(), mean_ref.data(), rstd.data(), gamma.data(), training, dx.data(),
                            dg.data(), db.data());
        batch_norm_backward_ref(s, x.data(), dy.data(), mean_ref.data(), rstd.data(), gamma.data(), training,
                                dx_r.data(), dg_r.data(), db_r.data());
        test::require_close(dx, dx_r, 1e-5, 1e-4);
        test::require_close(dg, dg_r, 1e-4, 1e-4);
        test::require_close(db, db_r, 1e-4, 1e-4);
      }
    });
  }
}

TEST_CASE("sgemm through OpenBLAS equals the reference, transposes and strides included", "[kernels][blas]") {
  for (auto [M, N, K] : {std::tuple{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 48, 130}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO("M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb);
        int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
        Tensor a = test::random_tensor({(ta ? K : M) * lda}, 31), b = test::random_tensor({(tb ? N : K) * ldb}, 32);
        Tensor c = test::random_tensor({M * ldc}, 33), c_ref = c.clone();
        blas::sgemm(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 2.f, c.data(), ldc);
        blas::sgemm_ref(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 2.f, c_ref.data(), ldc);
        test::require_close(c, c_ref, 1e-5, 1e-5);
      }
  }
}

TEST_CASE("OpenBLAS reports its kernel set and respects OPENBLAS_CORETYPE", "[kernels][blas]") {
  blas::Info info = blas::info();
  CHECK_FALSE(info.core.empty());
  CHECK(info.config.find("OpenBLAS") != std::string::npos);
  if (info.coretype_from_environment) {
    CHECK(info.coretype == std::getenv("OPENBLAS_CORETYPE"));
  } else {
    CHECK(std::getenv("OPENBLAS_CORETYPE") == nullptr);  // the variable set for the load was removed
    if (!info.coretype.empty()) CHECK(info.core == info.coretype);
  }
}

TEST_CASE("parallel_for covers the range once, nests inline and propagates errors", "[kernels][parallel]") {
  for (int t : {1, 2, 3}) {
    set_num_threads(t);
    std::vector<int> hits(1000, 0);
    std::atomic<int> nested_outside_region{0};  // Catch2 assertions are not thread-safe: count, then check
    parallel_for(1000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
      parallel_for(10, 1, [&](int64_t, int64_t) { nested_outside_region += in_parallel_region() ? 0 : 1; });
    });
    if (t > 1) CHECK(nested_outside_region == 0);
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
    CHECK_FALSE(in_parallel_region());
    CHECK_THROWS_WITH(parallel_for(100, 1, [](int64_t, int64_t e) {
                        if (e == 100) throw Error("chunk failed");
                      }),
                      "chunk failed");
  }
  set_num_threads(2);
  CHECK(num_threads() == 2);
  CHECK_THROWS_AS(set_num_threads(0), Error);
}

}  // namespace shears
