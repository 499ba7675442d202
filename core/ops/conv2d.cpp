// conv2d: shape checks, the forward kernel and the backward for input and weight side by side.
// The fast path is im2col + sgemm (darknet's forward_convolutional_layer): per sample and group,
//   col (C_in/g·kH·kW, H_out·W_out) = im2col(x),  y_g (C_out/g, H_out·W_out) = W_g · col
// and the backward reuses the same column layout: dcol = W_gᵀ · dy_g then col2im; dW_g += dy_g · colᵀ.
#include "core/ops/conv2d.hpp"

#include <cstring>
#include <vector>

#include "core/autograd.hpp"
#include "core/blas.hpp"
#include "core/error.hpp"

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

namespace {

bool is_pointwise(const ConvGeometry& g) {
  return g.kH == 1 && g.kW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// col (C·kH·kW, H_out·W_out) from one sample's channels [c0, c0 + C) of x (C_in, H, W).
void im2col(const ConvGeometry& g, const float* x, float* col) {
  int64_t C = g.cin_g(), HWo = g.H_out * g.W_out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t ki = 0; ki < g.kH; ++ki)
      for (int64_t kj = 0; kj < g.kW; ++kj) {
        float* row = col + ((c * g.kH + ki) * g.kW + kj) * HWo;
        const float* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.H_out; ++oh) {
          int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
          float* out = row + oh * g.W_out;
          if (ih < 0 || ih >= g.H) {
            std::memset(out, 0, sizeof(float) * g.W_out);
            continue;
          }
          for (int64_t ow = 0; ow < g.W_out; ++ow) {
            int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dil_w;
            out[ow] = iw >= 0 && iw < g.W ? plane[ih * g.W + iw] : 0.f;
          }
        }
      }
}

// The adjoint of im2col: accumulates col back into x (C, H, W), which must start zeroed.
void col2im(const ConvGeometry& g, const float* col, float* x) {
  int64_t C = g.cin_g(), HWo = g.H_out * g.W_out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t ki = 0; ki < g.kH; ++ki)
      for (int64_t kj = 0; kj < g.kW; ++kj) {
        const float* row = col + ((c * g.kH + ki) * g.kW + kj) * HWo;
        float* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.H_out; ++oh) {
          int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t ow = 0; ow < g.W_out; ++ow) {
            int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dil_w;
            if (iw >= 0 && iw < g.W) plane[ih * g.W + iw] += row[oh * g.W_out + ow];
          }
        }
      }
}

}  // namespace

void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  int64_t K = g.cin_g() * g.kH * g.kW, HWo = g.H_out * g.W_out, M = g.cout_g();
  std::vector<float> col(is_pointwise(g) ? 0 : K * HWo);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.C_in + grp * g.cin_g()) * g.H * g.W;
      float* yg = y + (n * g.C_out + grp * M) * HWo;
      const float* src = xg;
      if (!is_pointwise(g)) {
        im2col(g, xg, col.data());
        src = col.data();
      }
      blas::sgemm(false, false, M, HWo, K, 1.f, w + grp * M * K, K, src, HWo, 0.f, yg, HWo);
      if (bias)
        for (int64_t o = 0; o < M; ++o)
          for (int64_t i = 0; i < HWo; ++i) yg[o * HWo + i] += bias[grp * M + o];
    }
}

void conv2d_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  int64_t K = g.cin_g() * g.kH * g.kW, HWo = g.H_out * g.W_out, M = g.cout_g();
  std::memset(dx, 0, sizeof(float) * g.N * g.C_in * g.H * g.W);
  std::vector<float> col(is_pointwise(g) ? 0 : K * HWo);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* dyg = dy + (n * g.C_out + grp * M) * HWo;
      float* dxg = dx + (n * g.C_in + grp * g.cin_g()) * g.H * g.W;
      float* dst = is_pointwise(g) ? dxg : col.data();
      blas::sgemm(true, false, K, HWo, M, 1.f, w + grp * M * K, K, dyg, HWo, 0.f, dst, HWo);
      if (!is_pointwise(g)) col2im(g, col.data(), dxg);
    }
}

void conv2d_backward_weight(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  int64_t K = g.cin_g() * g.kH * g.kW, HWo = g.H_out * g.W_out, M = g.cout_g();
  std::memset(dw, 0, sizeof(float) * g.C_out * K);
  std::vector<float> col(is_pointwise(g) ? 0 : K * HWo);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.C_in + grp * g.cin_g()) * g.H * g.W;
      const float* dyg = dy + (n * g.C_out + grp * M) * HWo;
      const float* src = xg;
      if (!is_pointwise(g)) {
        im2col(g, xg, col.data());
        src = col.data();
      }
      blas::sgemm(false, true, M, K, HWo, 1.f, dyg, HWo, src, HWo, 1.f, dw + grp * M * K, K);
    }
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
  ConvGeometry g = conv_geometry(x.shape(), weight.shape(), opt);
  SHEARS_CHECK(!bias.defined() || bias.shape() == Shape{g.C_out}, "conv2d", "bias has shape ",
               bias.defined() ? to_string(bias.shape()) : "", ", expected [", g.C_out, "]");
  Tensor y = Tensor::empty({g.N, g.C_out, g.H_out, g.W_out});
  conv2d_forward(g, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data());
  Tensor xs = x.detach(), ws = weight.detach();
  return record(y, "conv2d", {x, weight, bias}, [g, xs, ws](const Tensor& dy, const std::vector<bool>& needs) {
    Tensor dx, dw, db;
    if (needs[0]) {
      dx = Tensor::empty(xs.shape());
      conv2d_backward_input(g, dy.data(), ws.data(), dx.data());
    }
    if (needs[1]) {
      dw = Tensor::empty(ws.shape());
      conv2d_backward_weight(g, dy.data(), xs.data(), dw.data());
    }
    if (needs[2]) db = sum(dy, {0, 2, 3});
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace shears
