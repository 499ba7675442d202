// matmul and linear on OpenBLAS sgemm; their backward passes are sgemms too:
//   C = A·B        dA = dC·Bᵀ, dB = Aᵀ·dC
//   y = x·Wᵀ + b   dx = dy·W,  dW = dyᵀ·x, db = Σ_rows dy
#include "core/autograd.hpp"
#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(matmul);
SHEARS_REGISTER_OP(linear);

namespace {

// Batched C[b] = op(A[b]) · op(B[b]) with A (batch, ...) laid out contiguously.
void batched_sgemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
                   const float* B, float* C) {
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  for (int64_t b = 0; b < batch; ++b)
    blas::sgemm(ta, tb, M, N, K, 1.f, A + b * M * K, lda, B + b * K * N, ldb, 0.f, C + b * M * N, N);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  profile::OpScope profile_scope("matmul");
  SHEARS_CHECK((a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && b.dim() == 3), "matmul",
               "expected (M,K)x(K,N) or (B,M,K)x(B,K,N), got ", to_string(a.shape()), " x ", to_string(b.shape()));
  bool batched = a.dim() == 3;
  int64_t batch = batched ? a.size(0) : 1;
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  SHEARS_CHECK(b.size(-2) == K && (!batched || b.size(0) == batch), "matmul", "inner dimensions differ: ",
               to_string(a.shape()), " x ", to_string(b.shape()));
  Tensor out = Tensor::empty(batched ? Shape{batch, M, N} : Shape{M, N});
  profile_scope.add_flops(2.0 * batch * M * N * K);
  batched_sgemm(batch, false, false, M, N, K, a.data(), b.data(), out.data());
  Tensor as = a.detach(), bs = b.detach();
  return record(out, "matmul", {a, b}, [=](const Tensor& g, const std::vector<bool>& needs) {
    Tensor ga, gb;
    if (needs[0]) {
      ga = Tensor::empty(as.shape());  // (M,N)·(K,N)ᵀ
      batched_sgemm(batch, false, true, M, K, N, g.data(), bs.data(), ga.data());
    }
    if (needs[1]) {
      gb = Tensor::empty(bs.shape());  // (M,K)ᵀ·(M,N)
      batched_sgemm(batch, true, false, K, N, M, as.data(), g.data(), gb.data());
    }
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profile::OpScope profile_scope("linear");
  SHEARS_CHECK(weight.dim() == 2, "linear", "weight must be (out_features, in_features), got ",
               to_string(weight.shape()));
  int64_t out_f = weight.size(0), in_f = weight.size(1);
  SHEARS_CHECK(x.dim() >= 1 && x.size(-1) == in_f, "linear", "input has shape ", to_string(x.shape()),
               ", expected last dimension ", in_f, " (weight ", to_string(weight.shape()), ")");
  SHEARS_CHECK(!bias.defined() || bias.shape() == Shape{out_f}, "linear", "bias has shape ",
               bias.defined() ? to_string(bias.shape()) : "", ", expected [", out_f, "]");
  int64_t rows = x.numel() / in_f;
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = Tensor::empty(out_shape);
  float beta = 0.f;
  if (bias.defined()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_f; ++o) out.data()[r * out_f + o] = bias.data()[o];
    beta = 1.f;
  }
  profile_scope.add_flops(2.0 * rows * out_f * in_f);
  blas::sgemm(false, true, rows, out_f, in_f, 1.f, x.data(), in_f, weight.data(), in_f, beta, out.data(), out_f);
  Tensor xs = x.detach(), ws = weight.detach();
  return record(out, "linear", {x, weight, bias}, [=](const Tensor& g, const std::vector<bool>& needs) {
    Tensor gx, gw, gb;
    if (needs[0]) {
      gx = Tensor::empty(xs.shape());
      blas::sgemm(false, false, rows, in_f, out_f, 1.f, g.data(), out_f, ws.data(), in_f, 0.f, gx.data(), in_f);
    }
    if (needs[1]) {
      gw = Tensor::empty(ws.shape());
      blas::sgemm(true, false, out_f, in_f, rows, 1.f, g.data(), out_f, xs.data(), in_f, 0.f, gw.data(), in_f);
    }
    if (needs[2]) gb = sum_to(g.view({rows, out_f}), {out_f});
    return std::vector<Tensor>{gx, gw, gb};
  });
}

}  // namespace shears
