// Pooling: max_pool2d (keeps the argmax of every window for its backward), avg_pool2d and
// adaptive_avg_pool2d (PyTorch's window rule: start = ⌊i·H/out⌋, end = ⌈(i+1)·H/out⌉).
// x (N, C, H, W) -> y (N, C, H_out, W_out); every (n, c) plane is pooled independently, so
// threads split the planes. The window loops are plain C++ (no SIMD kernel yet).
#include <algorithm>
#include <limits>
#include <memory>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(max_pool2d);
SHEARS_REGISTER_OP(avg_pool2d);
SHEARS_REGISTER_OP(adaptive_avg_pool2d);

namespace {

struct PoolGeometry {
  int64_t planes, H, W, H_out, W_out;
};

PoolGeometry pool_geometry(const Tensor& x, const Pool2dOptions& opt, const char* op) {
  SHEARS_CHECK(x.dim() == 4, op, "input must be (N, C, H, W), got ", to_string(x.shape()));
  for (int i = 0; i < 2; ++i) {
    SHEARS_CHECK(opt.kernel[i] >= 1 && opt.stride[i] >= 1, op, "kernel and stride must be >= 1, got kernel ",
                 opt.kernel[i], ", stride ", opt.stride[i]);
    SHEARS_CHECK(opt.padding[i] >= 0 && 2 * opt.padding[i] <= opt.kernel[i], op,
                 "padding must be between 0 and half the kernel size, got padding ", opt.padding[i],
                 " for kernel ", opt.kernel[i]);
  }
  PoolGeometry g{x.size(0) * x.size(1), x.size(2), x.size(3), 0, 0};
  SHEARS_CHECK(g.H + 2 * opt.padding[0] >= opt.kernel[0] && g.W + 2 * opt.padding[1] >= opt.kernel[1], op,
               "kernel ", opt.kernel[0], "x", opt.kernel[1], " is larger than the padded input ", to_string(x.shape()));
  g.H_out = (g.H + 2 * opt.padding[0] - opt.kernel[0]) / opt.stride[0] + 1;
  g.W_out = (g.W + 2 * opt.padding[1] - opt.kernel[1]) / opt.stride[1] + 1;
  return g;
}

// Window [begin, end) of output position i along one axis, clipped to the input.
struct Window {
  int64_t begin, end;
};
Window window(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t size) {
  int64_t b = i * stride - pad;
  return {std::max<int64_t>(b, 0), std::min(b + kernel, size)};
}

// The kernels handle planes [p0, p1); the ops split the planes across threads.
// y and argmax (flat index into the plane) for every output.
void max_pool2d_forward(const PoolGeometry& g, const Pool2dOptions& opt, const float* x, float* y,
                        int32_t* argmax, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.H_out; ++oh) {
      Window wh = window(oh, opt.stride[0], opt.padding[0], opt.kernel[0], g.H);
      for (int64_t ow = 0; ow < g.W_out; ++ow) {
        Window ww = window(ow, opt.stride[1], opt.padding[1], opt.kernel[1], g.W);
        float best = -std::numeric_limits<float>::infinity();
        int64_t at = wh.begin * g.W + ww.begin;
        for (int64_t ih = wh.begin; ih < wh.end; ++ih)
          for (int64_t iw = ww.begin; iw < ww.end; ++iw)
            if (plane[ih * g.W + iw] > best) best = plane[at = ih * g.W + iw];
        int64_t o = (p * g.H_out + oh) * g.W_out + ow;
        y[o] = best;
        argmax[o] = static_cast<int32_t>(at);
      }
    }
  }
}

void avg_pool2d_forward(const PoolGeometry& g, const Pool2dOptions& opt, const float* x, float* y, int64_t p0,
                        int64_t p1) {
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < g.H_out; ++oh) {
      Window wh = window(oh, opt.stride[0], opt.padding[0], opt.kernel[0], g.H);
      for (int64_t ow = 0; ow < g.W_out; ++ow) {
        Window ww = window(ow, opt.stride[1], opt.padding[1], opt.kernel[1], g.W);
        double acc = 0.0;
        for (int64_t ih = wh.begin; ih < wh.end; ++ih)
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) acc += x[(p * g.H + ih) * g.W + iw];
        int64_t count = opt.count_include_pad ? opt.kernel[0] * opt.kernel[1]
                                              : (wh.end - wh.begin) * (ww.end - ww.begin);
        y[(p * g.H_out + oh) * g.W_out + ow] = static_cast<float>(acc / count);
      }
    }
}

void avg_pool2d_backward(const PoolGeometry& g, const Pool2dOptions& opt, const float* dy, float* dx, int64_t p0,
                         int64_t p1) {
  std::fill(dx + p0 * g.H * g.W, dx + p1 * g.H * g.W, 0.f);
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < g.H_out; ++oh) {
      Window wh = window(oh, opt.stride[0], opt.padding[0], opt.kernel[0], g.H);
      for (int64_t ow = 0; ow < g.W_out; ++ow) {
        Window ww = window(ow, opt.stride[1], opt.padding[1], opt.kernel[1], g.W);
        int64_t count = opt.count_include_pad ? opt.kernel[0] * opt.kernel[1]
                                              : (wh.end - wh.begin) * (ww.end - ww.begin);
        float share = dy[(p * g.H_out + oh) * g.W_out + ow] / static_cast<float>(count);
        for (int64_t ih = wh.begin; ih < wh.end; ++ih)
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) dx[(p * g.H + ih) * g.W + iw] += share;
      }
    }
}

int64_t plane_grain(const PoolGeometry& g) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, g.H * g.W)); }

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  profile::OpScope profile_scope("max_pool2d");
  PoolGeometry g = pool_geometry(x, opt, "max_pool2d");
  Tensor y = Tensor::empty({x.size(0), x.size(1), g.H_out, g.W_out});
  auto argmax = std::make_shared<std::vector<int32_t>>(y.numel());
  parallel_for(g.planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
    max_pool2d_forward(g, opt, x.data(), y.data(), argmax->data(), p0, p1);
  });
  Shape in_shape = x.shape();
  return record(y, "max_pool2d", {x}, [g, in_shape, argmax](const Tensor& dy, const std::vector<bool>&) {
    Tensor dx = Tensor::empty(in_shape);
    int64_t per_plane = g.H_out * g.W_out;
    parallel_for(g.planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
      std::fill(dx.data() + p0 * g.H * g.W, dx.data() + p1 * g.H * g.W, 0.f);
      for (int64_t o = p0 * per_plane; o < p1 * per_plane; ++o)
        dx.data()[(o / per_plane) * g.H * g.W + (*argmax)[o]] += dy.data()[o];
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  profile::OpScope profile_scope("avg_pool2d");
  PoolGeometry g = pool_geometry(x, opt, "avg_pool2d");
  Tensor y = Tensor::empty({x.size(0), x.size(1), g.H_out, g.W_out});
  parallel_for(g.planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
    avg_pool2d_forward(g, opt, x.data(), y.data(), p0, p1);
  });
  Shape in_shape = x.shape();
  return record(y, "avg_pool2d", {x}, [g, opt, in_shape](const Tensor& dy, const std::vector<bool>&) {
    Tensor dx = Tensor::empty(in_shape);
    parallel_for(g.planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
      avg_pool2d_backward(g, opt, dy.data(), dx.data(), p0, p1);
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> out) {
  profile::OpScope profile_scope("adaptive_avg_pool2d");
  SHEARS_CHECK(x.dim() == 4, "adaptive_avg_pool2d", "input must be (N, C, H, W), got ", to_string(x.shape()));
  SHEARS_CHECK(out[0] >= 1 && out[1] >= 1, "adaptive_avg_pool2d", "output size must be positive, got ", out[0],
               "x", out[1]);
  int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  auto start = [](int64_t i, int64_t in, int64_t n) { return i * in / n; };
  auto stop = [](int64_t i, int64_t in, int64_t n) { return ((i + 1) * in + n - 1) / n; };
  Tensor y = Tensor::empty({x.size(0), x.size(1), out[0], out[1]});
  auto for_each_window = [=](auto f) {
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t oh = 0; oh < out[0]; ++oh)
        for (int64_t ow = 0; ow < out[1]; ++ow) {
          int64_t h0 = start(oh, H, out[0]), h1 = stop(oh, H, out[0]);
          int64_t w0 = start(ow, W, out[1]), w1 = stop(ow, W, out[1]);
          f((p * out[0] + oh) * out[1] + ow, p * H * W, h0, h1, w0, w1);
        }
  };
  for_each_window([&](int64_t o, int64_t base, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    double acc = 0.0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) acc += x.data()[base + ih * W + iw];
    y.data()[o] = static_cast<float>(acc / ((h1 - h0) * (w1 - w0)));
  });
  Shape in_shape = x.shape();
  return record(y, "adaptive_avg_pool2d", {x}, [=](const Tensor& dy, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros(in_shape);
    for_each_window([&](int64_t o, int64_t base, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      float share = dy.data()[o] / static_cast<float>((h1 - h0) * (w1 - w0));
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) dx.data()[base + ih * W + iw] += share;
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace shears
