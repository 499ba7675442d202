// batch_norm over (N, C) or (N, C, H, W), seen as (N, C, L) with L = H·W (or 1).
// Training normalises with the biased batch variance and updates running statistics with the
// unbiased one (PyTorch's rule); the backward keeps only x, the mean and 1/σ
// (docs/design.md#save-only-what-the-backward-reads):
//   dx = γ·rstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)),  M = N·L
// Eval normalises with the running statistics, so its backward is a per-channel scale.
// Fast kernels work channel by channel (threads split the channels, so a channel's sums are
// accumulated in the same order whatever the thread count) over contiguous lanes of L.
#include "core/ops/batch_norm.hpp"

#include <cmath>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(batch_norm);

namespace {

// Channels per task so that one task touches at least ~32k elements.
int64_t channel_grain(const BnShape& s) { return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, s.N * s.L)); }

const float* lane(const float* base, const BnShape& s, int64_t n, int64_t c) { return base + (n * s.C + c) * s.L; }
float* lane(float* base, const BnShape& s, int64_t n, int64_t c) { return base + (n * s.C + c) * s.L; }

}  // namespace

void batch_norm_stats(const BnShape& s, const float* x, float* mean, float* var) {
  const kernels::Table& k = kernels::kernels();
  double count = static_cast<double>(s.N * s.L);
  parallel_for(s.C, channel_grain(s), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double total = 0.0;
      for (int64_t n = 0; n < s.N; ++n) total += k.sum(lane(x, s, n, c), s.L);
      float m = static_cast<float>(total / count);
      double squares = 0.0;
      for (int64_t n = 0; n < s.N; ++n) squares += k.sum_squared_deviation(lane(x, s, n, c), s.L, m);
      mean[c] = m;
      var[c] = static_cast<float>(squares / count);
    }
  });
}

void batch_norm_stats_ref(const BnShape& s, const float* x, float* mean, float* var) {
  double count = static_cast<double>(s.N * s.L);
  for (int64_t c = 0; c < s.C; ++c) {
    double total = 0.0, squares = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t l = 0; l < s.L; ++l) total += lane(x, s, n, c)[l];
    double m = total / count;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t l = 0; l < s.L; ++l) squares += (lane(x, s, n, c)[l] - m) * (lane(x, s, n, c)[l] - m);
    mean[c] = static_cast<float>(m);
    var[c] = static_cast<float>(squares / count);
  }
}

void batch_norm_apply(const BnShape& s, const float* x, const float* scale, const float* shift, float* y) {
  const kernels::Table& k = kernels::kernels();
  parallel_for(s.N * s.C, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, s.L)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t c = i % s.C;
      k.scale_shift(x + i * s.L, y + i * s.L, s.L, scale[c], shift[c]);
    }
  });
}

void batch_norm_apply_ref(const BnShape& s, const float* x, const float* scale, const float* shift, float* y) {
  for (int64_t i = 0; i < s.N * s.C; ++i)
    for (int64_t l = 0; l < s.L; ++l) y[i * s.L + l] = x[i * s.L + l] * scale[i % s.C] + shift[i % s.C];
}

void batch_norm_backward(const BnShape& s, const float* x, const float* dy, const float* mean, const float* rstd,
                         const float* gamma, bool training, float* dx, float* dgamma, float* dbeta) {
  const kernels::Table& k = kernels::kernels();
  double M = static_cast<double>(s.N * s.L);
  parallel_for(s.C, channel_grain(s), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum_dy = 0.0, sum_dy_xc = 0.0;  // Σdy and Σdy·(x − mean)
      for (int64_t n = 0; n < s.N; ++n) {
        sum_dy += k.sum(lane(dy, s, n, c), s.L);
        sum_dy_xc += k.dot_centered(lane(dy, s, n, c), lane(x, s, n, c), s.L, mean[c]);
      }
      float r = rstd[c], g = gamma ? gamma[c] : 1.f;
      if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xc * r);
      if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
      if (!dx) continue;
      // dx = a·dy + b·x + c with a = γr, b = −γr³·Σdy·xc/M, c = −γr·Σdy/M − b·mean.
      float a = g * r;
      float b = training ? static_cast<float>(-g * r * r * r * sum_dy_xc / M) : 0.f;
      float shift = training ? static_cast<float>(-g * r * sum_dy / M) - b * mean[c] : 0.f;
      for (int64_t n = 0; n < s.N; ++n) k.affine2(lane(dy, s, n, c), lane(x, s, n, c), lane(dx, s, n, c), s.L, a, b, shift);
    }
  });
}

void batch_norm_backward_ref(const BnShape& s, const float* x, const float* dy, const float* mean,
                             const float* rstd, const float* gamma, bool training, float* dx, float* dgamma,
                             float* dbeta) {
  double M = static_cast<double>(s.N * s.L);
  for (int64_t c = 0; c < s.C; ++c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t l = 0; l < s.L; ++l) {
        double g = lane(dy, s, n, c)[l], xhat = (lane(x, s, n, c)[l] - mean[c]) * static_cast<double>(rstd[c]);
        sum_dy += g;
        sum_dy_xhat += g * xhat;
      }
    if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xhat);
    if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
    if (!dx) continue;
    double gr = (gamma ? gamma[c] : 1.0) * rstd[c];
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t l = 0; l < s.L; ++l) {
        double g = lane(dy, s, n, c)[l], xhat = (lane(x, s, n, c)[l] - mean[c]) * static_cast<double>(rstd[c]);
        lane(dx, s, n, c)[l] =
            static_cast<float>(training ? gr * (g - sum_dy / M - xhat * sum_dy_xhat / M) : gr * g);
      }
  }
}

namespace {

BnShape bn_shape(const Tensor& x) {
  SHEARS_CHECK(x.dim() == 2 || x.dim() == 4, "batch_norm", "input must be (N, C) or (N, C, H, W), got ",
               to_string(x.shape()));
  return {x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1};
}

void check_channel_tensor(const Tensor& t, int64_t C, const char* name) {
  SHEARS_CHECK(!t.defined() || t.shape() == Shape{C}, "batch_norm", name, " has shape ",
               t.defined() ? to_string(t.shape()) : "", ", expected [", C, "]");
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps) {
  profile::OpScope profile_scope("batch_norm");
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
    Tensor var = Tensor::empty({s.C});
    batch_norm_stats(s, x.data(), mean.data(), var.data());
    for (int64_t c = 0; c < s.C; ++c) {
      float m = mean.data()[c], v = var.data()[c];
      rstd.data()[c] = 1.f / std::sqrt(v + eps);
      if (running_mean.defined()) running_mean.data()[c] = (1.f - momentum) * running_mean.data()[c] + momentum * m;
      if (running_var.defined())
        running_var.data()[c] = (1.f - momentum) * running_var.data()[c] +
                                momentum * static_cast<float>(static_cast<double>(v) * M / (M - 1));
    }
  } else {
    for (int64_t c = 0; c < s.C; ++c) {
      mean.data()[c] = running_mean.data()[c];
      rstd.data()[c] = 1.f / std::sqrt(running_var.data()[c] + eps);
    }
  }
  std::vector<float> scale(s.C), shift(s.C);
  for (int64_t c = 0; c < s.C; ++c) {
    scale[c] = (weight.defined() ? weight.data()[c] : 1.f) * rstd.data()[c];
    shift[c] = (bias.defined() ? bias.data()[c] : 0.f) - mean.data()[c] * scale[c];
  }
  Tensor y = Tensor::empty(x.shape());
  batch_norm_apply(s, x.data(), scale.data(), shift.data(), y.data());

  Tensor xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor();
  return record(y, "batch_norm", {x, weight, bias}, [=](const Tensor& dy, const std::vector<bool>& needs) {
    Tensor dx = needs[0] ? Tensor::empty(xs.shape()) : Tensor();
    Tensor dw = needs[1] ? Tensor::empty({s.C}) : Tensor();
    Tensor db = needs[2] ? Tensor::empty({s.C}) : Tensor();
    batch_norm_backward(s, xs.data(), dy.data(), mean.data(), rstd.data(), ws.defined() ? ws.data() : nullptr,
                        training, dx.defined() ? dx.data() : nullptr, dw.defined() ? dw.data() : nullptr,
                        db.defined() ? db.data() : nullptr);
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace shears
