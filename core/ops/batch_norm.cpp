// batch_norm over (N, C) or (N, C, H, W), seen as (N, C, L) with L = H·W (or 1).
// Training normalises with the biased batch variance and updates running statistics with the
// unbiased one (PyTorch's rule); the backward keeps only x, the mean and 1/σ (DESIGN.md §2.2):
//   dx = rstd/M · (M·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)),  dx̂ = dy·γ,  M = N·L
// Eval normalises with the running statistics, so its backward is a per-channel scale.
#include <cmath>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"

namespace shears {

SHEARS_REGISTER_OP(batch_norm);

namespace {

struct BnShape {
  int64_t N, C, L;
};

BnShape bn_shape(const Tensor& x) {
  SHEARS_CHECK(x.dim() == 2 || x.dim() == 4, "batch_norm", "input must be (N, C) or (N, C, H, W), got ",
               to_string(x.shape()));
  return {x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1};
}

void check_channel_tensor(const Tensor& t, int64_t C, const char* name) {
  SHEARS_CHECK(!t.defined() || t.shape() == Shape{C}, "batch_norm", name, " has shape ",
               t.defined() ? to_string(t.shape()) : "", ", expected [", C, "]");
}

// Per-channel mean and biased variance, accumulated in double.
void channel_stats_ref(const BnShape& s, const float* x, std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(s.C, 0.0);
  var.assign(s.C, 0.0);
  double count = static_cast<double>(s.N * s.L);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      const float* p = x + (n * s.C + c) * s.L;
      for (int64_t l = 0; l < s.L; ++l) mean[c] += p[l];
    }
  for (int64_t c = 0; c < s.C; ++c) mean[c] /= count;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      const float* p = x + (n * s.C + c) * s.L;
      for (int64_t l = 0; l < s.L; ++l) var[c] += (p[l] - mean[c]) * (p[l] - mean[c]);
    }
  for (int64_t c = 0; c < s.C; ++c) var[c] /= count;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps) {
  BnShape s = bn_shape(x);
  check_channel_tensor(weight, s.C, "weight");
  check_channel_tensor(bias, s.C, "bias");
  check_channel_tensor(running_mean, s.C, "running_mean");
  check_channel_tensor(running_var, s.C, "running_var");
  SHEARS_CHECK(training || (running_mean.defined() && running_var.defined()), "batch_norm",
               "eval mode needs running_mean and running_var");
  int64_t M = s.N * s.L;
  Tensor mean = Tensor::empty({s.C}), rstd = Tensor::empty({s.C});
  if (training) {
    SHEARS_CHECK(M > 1, "batch_norm", "expected more than 1 value per channel when training, got input ",
                 to_string(x.shape()));
    std::vector<double> m, v;
    channel_stats_ref(s, x.data(), m, v);
    for (int64_t c = 0; c < s.C; ++c) {
      mean.data()[c] = static_cast<float>(m[c]);
      rstd.data()[c] = static_cast<float>(1.0 / std::sqrt(v[c] + eps));
      if (running_mean.defined()) {
        float& rm = running_mean.data()[c];
        rm = (1.f - momentum) * rm + momentum * static_cast<float>(m[c]);
      }
      if (running_var.defined()) {
        float& rv = running_var.data()[c];
        rv = (1.f - momentum) * rv + momentum * static_cast<float>(v[c] * M / (M - 1));
      }
    }
  } else {
    for (int64_t c = 0; c < s.C; ++c) {
      mean.data()[c] = running_mean.data()[c];
      rstd.data()[c] = 1.f / std::sqrt(running_var.data()[c] + eps);
    }
  }

  Tensor y = Tensor::empty(x.shape());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      float gamma = weight.defined() ? weight.data()[c] : 1.f, beta = bias.defined() ? bias.data()[c] : 0.f;
      float scale = gamma * rstd.data()[c], shift = beta - mean.data()[c] * scale;
      const float* px = x.data() + (n * s.C + c) * s.L;
      float* py = y.data() + (n * s.C + c) * s.L;
      for (int64_t l = 0; l < s.L; ++l) py[l] = px[l] * scale + shift;
    }

  Tensor xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor();
  return record(y, "batch_norm", {x, weight, bias}, [=](const Tensor& dy, const std::vector<bool>& needs) {
    // Per channel: Σdy and Σdy·x̂.
    std::vector<double> sum_dy(s.C, 0.0), sum_dy_xhat(s.C, 0.0);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c) {
        const float* px = xs.data() + (n * s.C + c) * s.L;
        const float* pg = dy.data() + (n * s.C + c) * s.L;
        float mu = mean.data()[c], r = rstd.data()[c];
        for (int64_t l = 0; l < s.L; ++l) {
          sum_dy[c] += pg[l];
          sum_dy_xhat[c] += pg[l] * (px[l] - mu) * r;
        }
      }
    Tensor dx, dw, db;
    if (needs[0]) {
      dx = Tensor::empty(xs.shape());
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t c = 0; c < s.C; ++c) {
          float gamma = ws.defined() ? ws.data()[c] : 1.f, mu = mean.data()[c], r = rstd.data()[c];
          const float* px = xs.data() + (n * s.C + c) * s.L;
          const float* pg = dy.data() + (n * s.C + c) * s.L;
          float* pd = dx.data() + (n * s.C + c) * s.L;
          if (training) {
            float k1 = static_cast<float>(sum_dy[c] / M), k2 = static_cast<float>(sum_dy_xhat[c] / M);
            for (int64_t l = 0; l < s.L; ++l) pd[l] = gamma * r * (pg[l] - k1 - (px[l] - mu) * r * k2);
          } else {
            for (int64_t l = 0; l < s.L; ++l) pd[l] = gamma * r * pg[l];
          }
        }
    }
    if (needs[1]) {
      dw = Tensor::empty({s.C});
      for (int64_t c = 0; c < s.C; ++c) dw.data()[c] = static_cast<float>(sum_dy_xhat[c]);
    }
    if (needs[2]) {
      db = Tensor::empty({s.C});
      for (int64_t c = 0; c < s.C; ++c) db.data()[c] = static_cast<float>(sum_dy[c]);
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace shears
