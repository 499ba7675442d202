// softmax, log_softmax and the losses. Normalised exponentials subtract the row maximum for
// stability (rows along the last dimension, cross_entropy's included, run the SIMD kernel with its
// vector exp; other dimensions the plain reference). cross_entropy
// is fused (log_softmax + smoothed NLL), so its backward is
//   dlogits = (softmax − q) / N,  q = (1 − ε)·onehot(target) + ε / C.
#include <algorithm>
#include <cmath>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(softmax);
SHEARS_REGISTER_OP(log_softmax);
SHEARS_REGISTER_OP(cross_entropy);
SHEARS_REGISTER_OP(nll_loss);
SHEARS_REGISTER_OP(mse_loss);

namespace {

struct Lanes {
  int64_t outer, len, inner;
};

Lanes lanes(const Tensor& x, int64_t dim, const char* op) {
  int64_t d = normalize_dim(dim, x.dim(), op);
  Lanes l{1, x.dim() ? x.shape()[d] : 1, 1};
  for (int64_t i = 0; i < d; ++i) l.outer *= x.shape()[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) l.inner *= x.shape()[i];
  return l;
}

// Calls f(pointer to element 0, stride) for every lane along the reduced dimension.
template <typename F>
void for_each_lane(const Lanes& l, float* base, F f) {
  for (int64_t o = 0; o < l.outer; ++o)
    for (int64_t i = 0; i < l.inner; ++i) f(base + o * l.len * l.inner + i, l.inner);
}

// y = log_softmax(x) along the lane (or softmax when `log` is false); the reference kernel.
void normalized_exp_ref(const Lanes& l, const float* x, float* y, bool log) {
  for (int64_t o = 0; o < l.outer; ++o)
    for (int64_t i = 0; i < l.inner; ++i) {
      const float* px = x + o * l.len * l.inner + i;
      float* py = y + o * l.len * l.inner + i;
      float m = -INFINITY;
      for (int64_t k = 0; k < l.len; ++k) m = std::max(m, px[k * l.inner]);
      double total = 0.0;
      for (int64_t k = 0; k < l.len; ++k) total += std::exp(static_cast<double>(px[k * l.inner] - m));
      float log_total = static_cast<float>(std::log(total));
      for (int64_t k = 0; k < l.len; ++k) {
        float v = px[k * l.inner] - m - log_total;
        py[k * l.inner] = log ? v : std::exp(v);
      }
    }
}

void check_targets(const Tensor& scores, const std::vector<int64_t>& targets, const char* op) {
  SHEARS_CHECK(scores.dim() == 2, op, "input must be (N, C), got ", to_string(scores.shape()));
  SHEARS_CHECK(static_cast<int64_t>(targets.size()) == scores.size(0), op, "got ", targets.size(),
               " targets for a batch of ", scores.size(0));
  SHEARS_CHECK(scores.size(0) > 0, op, "empty batch");
  for (size_t n = 0; n < targets.size(); ++n)
    SHEARS_CHECK(targets[n] >= 0 && targets[n] < scores.size(1), op, "target ", targets[n], " at index ", n,
                 " is outside [0, ", scores.size(1), ")");
}

// Contiguous rows (the last dimension) run the SIMD kernel, split across threads by rows.
void normalized_exp(const Lanes& l, const float* x, float* y, bool log) {
  if (l.inner != 1) return normalized_exp_ref(l, x, y, log);
  const kernels::Table& k = kernels::kernels();
  parallel_for(l.outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, l.len)), [&](int64_t r0, int64_t r1) {
    k.log_softmax_rows(x + r0 * l.len, y + r0 * l.len, r1 - r0, l.len);
    if (!log) k.exp(y + r0 * l.len, y + r0 * l.len, (r1 - r0) * l.len);
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  profile::OpScope profile_scope("softmax");
  Lanes l = lanes(x, dim, "softmax");
  Tensor y = Tensor::empty(x.shape());
  normalized_exp(l, x.data(), y.data(), false);
  Tensor ys = y.detach();
  return record(y, "softmax", {x}, [l, ys](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = g.clone();  // dx = y · (g − Σ g·y)
    for_each_lane(l, dx.data(), [&](float* pd, int64_t stride) {
      const float* py = ys.data() + (pd - dx.data());
      double dot = 0.0;
      for (int64_t k = 0; k < l.len; ++k) dot += pd[k * stride] * py[k * stride];
      for (int64_t k = 0; k < l.len; ++k) pd[k * stride] = py[k * stride] * (pd[k * stride] - static_cast<float>(dot));
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  profile::OpScope profile_scope("log_softmax");
  Lanes l = lanes(x, dim, "log_softmax");
  Tensor y = Tensor::empty(x.shape());
  normalized_exp(l, x.data(), y.data(), true);
  Tensor ys = y.detach();
  return record(y, "log_softmax", {x}, [l, ys](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = g.clone();  // dx = g − exp(y) · Σ g
    for_each_lane(l, dx.data(), [&](float* pd, int64_t stride) {
      const float* py = ys.data() + (pd - dx.data());
      double total = 0.0;
      for (int64_t k = 0; k < l.len; ++k) total += pd[k * stride];
      for (int64_t k = 0; k < l.len; ++k) pd[k * stride] -= std::exp(py[k * stride]) * static_cast<float>(total);
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets, float label_smoothing) {
  profile::OpScope profile_scope("cross_entropy");
  check_targets(logits, targets, "cross_entropy");
  SHEARS_CHECK(label_smoothing >= 0.f && label_smoothing <= 1.f, "cross_entropy",
               "label_smoothing must be in [0, 1], got ", label_smoothing);
  int64_t N = logits.size(0), C = logits.size(1);
  Tensor logp = Tensor::empty(logits.shape());
  normalized_exp({N, C, 1}, logits.data(), logp.data(), true);
  double total = 0.0;
  float smooth = label_smoothing / static_cast<float>(C);
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logp.data() + n * C;
    double row_sum = 0.0;
    for (int64_t c = 0; c < C; ++c) row_sum += row[c];
    total -= (1.0 - label_smoothing) * row[targets[n]] + smooth * row_sum;
  }
  Tensor loss = Tensor::scalar(static_cast<float>(total / N));
  return record(loss, "cross_entropy", {logits}, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::empty(logp.shape());
    kernels::kernels().exp(logp.data(), dx.data(), N * C);  // softmax
    float scale = g.item() / static_cast<float>(N);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        float q = smooth + (c == targets[n] ? 1.f - label_smoothing : 0.f);
        dx.data()[n * C + c] = scale * (dx.data()[n * C + c] - q);
      }
    return std::vector<Tensor>{dx};
  });
}

Tensor nll_loss(const Tensor& log_probs, const std::vector<int64_t>& targets) {
  profile::OpScope profile_scope("nll_loss");
  check_targets(log_probs, targets, "nll_loss");
  int64_t N = log_probs.size(0), C = log_probs.size(1);
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) total -= log_probs.data()[n * C + targets[n]];
  Tensor loss = Tensor::scalar(static_cast<float>(total / N));
  return record(loss, "nll_loss", {log_probs}, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros({N, C});
    for (int64_t n = 0; n < N; ++n) dx.data()[n * C + targets[n]] = -g.item() / static_cast<float>(N);
    return std::vector<Tensor>{dx};
  });
}

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  profile::OpScope profile_scope("mse_loss");
  SHEARS_CHECK(input.shape() == target.shape(), "mse_loss", "input ", to_string(input.shape()), " and target ",
               to_string(target.shape()), " must have the same shape");
  SHEARS_CHECK(input.numel() > 0, "mse_loss", "empty input");
  Tensor diff = Tensor::empty(input.shape());
  double total = 0.0;
  for (int64_t i = 0; i < input.numel(); ++i) {
    diff.data()[i] = input.data()[i] - target.data()[i];
    total += static_cast<double>(diff.data()[i]) * diff.data()[i];
  }
  int64_t n = input.numel();
  Tensor loss = Tensor::scalar(static_cast<float>(total / n));
  return record(loss, "mse_loss", {input, target}, [=](const Tensor& g, const std::vector<bool>& needs) {
    Tensor gi = mul(diff, 2.f * g.item() / static_cast<float>(n));
    return std::vector<Tensor>{needs[0] ? gi : Tensor(), needs[1] ? neg(gi) : Tensor()};
  });
}

}  // namespace shears
