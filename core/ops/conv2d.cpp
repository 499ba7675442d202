// conv2d: shape checks, the op with its forward and backward side by side, and the reference
// kernels. The fast kernels and the choice between them are the convolution engine's
// (core/kernels/conv.hpp).
#include "core/ops/conv2d.hpp"

#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(conv2d);

ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Conv2dOptions& opt) {
  SHEARS_CHECK(x.size() == 4, "conv2d", "input must be (N, C, H, W), got ", to_string(x));
  SHEARS_CHECK(w.size() == 4, "conv2d", "weight must be (C_out, C_in/groups, kH, kW), got ", to_string(w));
  SHEARS_CHECK(opt.groups >= 1, "conv2d", "groups must be >= 1, got ", opt.groups);
  for (int i = 0; i < 2; ++i) {
    SHEARS_CHECK(opt.stride[i] >= 1, "conv2d", "stride must be >= 1, got ", opt.stride[i]);
    SHEARS_CHECK(opt.padding[i] >= 0, "conv2d", "padding must be >= 0, got ", opt.padding[i]);
    SHEARS_CHECK(opt.dilation[i] >= 1, "conv2d", "dilation must be >= 1, got ", opt.dilation[i]);
  }
  ConvGeometry g{};
  g.N = x[0], g.C_in = x[1], g.H = x[2], g.W = x[3];
  g.C_out = w[0], g.kH = w[2], g.kW = w[3];
  g.stride_h = opt.stride[0], g.stride_w = opt.stride[1];
  g.pad_h = opt.padding[0], g.pad_w = opt.padding[1];
  g.dil_h = opt.dilation[0], g.dil_w = opt.dilation[1];
  g.groups = opt.groups;
  SHEARS_CHECK(g.C_in % g.groups == 0 && g.C_out % g.groups == 0, "conv2d", "channels in (", g.C_in,
               ") and out (", g.C_out, ") must both be divisible by groups (", g.groups, ")");
  SHEARS_CHECK(w[1] == g.C_in / g.groups, "conv2d", "weight ", to_string(w), " expects ", w[1] * g.groups,
               " input channels, input ", to_string(x), " has ", g.C_in, " (groups = ", g.groups, ")");
  int64_t span_h = g.dil_h * (g.kH - 1) + 1, span_w = g.dil_w * (g.kW - 1) + 1;
  SHEARS_CHECK(g.H + 2 * g.pad_h >= span_h && g.W + 2 * g.pad_w >= span_w, "conv2d", "kernel ",
               to_string(w), " with dilation is larger than the padded input ", to_string(x));
  g.H_out = (g.H + 2 * g.pad_h - span_h) / g.stride_h + 1;
  g.W_out = (g.W + 2 * g.pad_w - span_w) / g.stride_w + 1;
  return g;
}

// Reference kernels: one loop nest over (n, o, oh, ow, c, ki, kj) shared by all three.
namespace {
template <typename F>
void for_each_tap(const ConvGeometry& g, F f) {
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.C_out; ++o) {
      int64_t grp = o / g.cout_g();
      for (int64_t oh = 0; oh < g.H_out; ++oh)
        for (int64_t ow = 0; ow < g.W_out; ++ow)
          for (int64_t c = 0; c < g.cin_g(); ++c)
            for (int64_t ki = 0; ki < g.kH; ++ki)
              for (int64_t kj = 0; kj < g.kW; ++kj) {
                int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
                int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dil_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                int64_t xi = ((n * g.C_in + grp * g.cin_g() + c) * g.H + ih) * g.W + iw;
                int64_t wi = ((o * g.cin_g() + c) * g.kH + ki) * g.kW + kj;
                int64_t yi = ((n * g.C_out + o) * g.H_out + oh) * g.W_out + ow;
                f(xi, wi, yi);
              }
    }
}

void store(const std::vector<double>& acc, float* dst) {
  for (size_t i = 0; i < acc.size(); ++i) dst[i] = static_cast<float>(acc[i]);
}
}  // namespace

void conv2d_forward_ref(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  std::vector<double> acc(g.N * g.C_out * g.H_out * g.W_out, 0.0);
  if (bias)
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = bias[(i / (g.H_out * g.W_out)) % g.C_out];
  for_each_tap(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[yi] += double(x[xi]) * w[wi]; });
  store(acc, y);
}

void conv2d_backward_input_ref(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  std::vector<double> acc(g.N * g.C_in * g.H * g.W, 0.0);
  for_each_tap(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[xi] += double(dy[yi]) * w[wi]; });
  store(acc, dx);
}

void conv2d_backward_weight_ref(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  std::vector<double> acc(g.C_out * g.cin_g() * g.kH * g.kW, 0.0);
  for_each_tap(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[wi] += double(dy[yi]) * x[xi]; });
  store(acc, dw);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  profile::OpScope profile_scope("conv2d");
  ConvGeometry g = conv_geometry(x.shape(), weight.shape(), opt);
  SHEARS_CHECK(!bias.defined() || bias.shape() == Shape{g.C_out}, "conv2d", "bias has shape ",
               bias.defined() ? to_string(bias.shape()) : "", ", expected [", g.C_out, "]");
  Tensor y = Tensor::empty({g.N, g.C_out, g.H_out, g.W_out});
  if (profile::active()) {
    profile_scope.add_flops(static_cast<double>(g.gemm_flops()));
    profile_scope.set_path(std::string(conv_path_name(conv_path(g, ConvPass::forward))) + " / " +
                           conv_path_name(conv_path(g, ConvPass::input_gradient)) + " / " +
                           conv_path_name(conv_path(g, ConvPass::weight_gradient)));
  }
  conv2d_forward(g, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data());
  Tensor xs = x.detach(), ws = weight.detach();
  return record(y, "conv2d", {x, weight, bias}, [g, xs, ws](const Tensor& dy, const std::vector<bool>& needs) {
    Tensor dx = needs[0] ? Tensor::empty(xs.shape()) : Tensor();
    Tensor dw = needs[1] ? Tensor::empty(ws.shape()) : Tensor(), db;
    conv2d_backward(g, dy.data(), xs.data(), ws.data(), dx.defined() ? dx.data() : nullptr,
                    dw.defined() ? dw.data() : nullptr);
    if (needs[2]) db = sum(dy, {0, 2, 3});
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace shears
