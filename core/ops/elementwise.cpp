// Elementwise ops: broadcasting binary arithmetic, unary maths and activations, dropout.
// Forward kernels are plain loops over contiguous memory; the backward of a broadcast
// reduces the gradient back to each input's shape with sum_to.
#include <algorithm>
#include <cmath>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/ops/loops.hpp"
#include "core/profile.hpp"
#include "core/random.hpp"

namespace shears {

SHEARS_REGISTER_OP(add);
SHEARS_REGISTER_OP(sub);
SHEARS_REGISTER_OP(mul);
SHEARS_REGISTER_OP(div);
SHEARS_REGISTER_OP(add_scalar);
SHEARS_REGISTER_OP(mul_scalar);
SHEARS_REGISTER_OP(neg);
SHEARS_REGISTER_OP(exp);
SHEARS_REGISTER_OP(log);
SHEARS_REGISTER_OP(sqrt);
SHEARS_REGISTER_OP(pow);
SHEARS_REGISTER_OP(abs);
SHEARS_REGISTER_OP(clamp);
SHEARS_REGISTER_OP(relu);
SHEARS_REGISTER_OP(relu6);
SHEARS_REGISTER_OP(leaky_relu);
SHEARS_REGISTER_OP(sigmoid);
SHEARS_REGISTER_OP(tanh);
SHEARS_REGISTER_OP(dropout);

namespace {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    SHEARS_CHECK(da == db || da == 1 || db == 1, op, "shapes ", to_string(a), " and ", to_string(b),
                 " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `in` read as `out` (right-aligned), 0 along broadcast dimensions.
Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape strides(out.size(), 0);
  Shape own = contiguous_strides(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) strides[lead + i] = in[i] == 1 ? 0 : own[i];
  return strides;
}

// Same shapes and scalar right-hand sides run the SIMD kernels; general broadcasting indexes.
template <typename F>
Tensor broadcast_binary(const Tensor& a, const Tensor& b, const char* op, kernels::Binary kind, F f) {
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(out_shape);
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  if (a.shape() == b.shape()) {
    parallel_elementwise(out.numel(), [&](int64_t begin, int64_t end) {
      kernels::kernels().binary(kind, pa + begin, pb + begin, po + begin, end - begin);
    });
  } else if (b.numel() == 1 && a.shape() == out_shape) {
    parallel_elementwise(out.numel(), [&](int64_t begin, int64_t end) {
      kernels::kernels().binary_scalar(kind, pa + begin, pb[0], po + begin, end - begin);
    });
  } else {
    Shape sa = broadcast_strides(a.shape(), out_shape);
    Shape sb = broadcast_strides(b.shape(), out_shape);
    for_each_index(out_shape, [&](int64_t i, const Shape& idx) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d < idx.size(); ++d) oa += idx[d] * sa[d], ob += idx[d] * sb[d];
      po[i] = f(pa[oa], pb[ob]);
    });
  }
  return out;
}

template <typename F>
Tensor map(const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = f(px[i]);
  return out;
}

// out[i] = f(a[i], b[i]) for two tensors of one shape.
template <typename F>
Tensor zip(const Tensor& a, const Tensor& b, F f) {
  SHEARS_ASSERT(a.shape() == b.shape());
  Tensor out = Tensor::empty(a.shape());
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  for (int64_t i = 0, n = a.numel(); i < n; ++i) po[i] = f(pa[i], pb[i]);
  return out;
}

// A unary op whose derivative is computed from the input x and/or the output y.
template <typename Fwd, typename Deriv>
Tensor unary(const Tensor& x, const char* op, Fwd forward, Deriv derivative) {
  profile::OpScope profile_scope(op);
  Tensor y = map(x, forward);
  Tensor xs = x.detach(), ys = y.detach();
  return record(y, op, {x}, [xs, ys, derivative](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(xs.shape());
    const float *pg = g.data(), *px = xs.data(), *py = ys.data();
    float* po = gx.data();
    for (int64_t i = 0, n = xs.numel(); i < n; ++i) po[i] = pg[i] * derivative(px[i], py[i]);
    return std::vector<Tensor>{gx};
  });
}

// y = x·scale + shift through the SIMD kernel.
Tensor scale_shift(const Tensor& x, float scale, float shift) {
  Tensor y = Tensor::empty(x.shape());
  parallel_elementwise(x.numel(), [&](int64_t begin, int64_t end) {
    kernels::kernels().scale_shift(x.data() + begin, y.data() + begin, end - begin, scale, shift);
  });
  return y;
}

// The ReLU family (relu, relu6, leaky_relu) through the SIMD kernels. With slope ≥ 0 the output
// has the input's sign and lies in (0, upper) exactly when the input does, so backward reads the
// output, as PyTorch's does: the input (a batch norm's output, in a conv-bn-relu) can then be freed
// after the forward pass, a third of such a network's saved activations.
Tensor relu_family(const Tensor& x, const char* op, float slope, float upper) {
  profile::OpScope profile_scope(op);
  Tensor y = Tensor::empty(x.shape());
  parallel_elementwise(x.numel(), [&](int64_t begin, int64_t end) {
    kernels::kernels().relu_family(x.data() + begin, y.data() + begin, end - begin, slope, upper);
  });
  Tensor saved = slope >= 0.f ? y.detach() : x.detach();  // output or input: same mask
  return record(y, op, {x}, [saved, slope, upper](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::empty(saved.shape());
    parallel_elementwise(saved.numel(), [&](int64_t begin, int64_t end) {
      kernels::kernels().relu_family_backward(saved.data() + begin, g.data() + begin, dx.data() + begin, end - begin,
                                              slope, upper);
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  profile::OpScope profile_scope("add");
  Tensor out = broadcast_binary(a, b, "add", kernels::Binary::Add, [](float x, float y) { return x + y; });
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "add", {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  profile::OpScope profile_scope("sub");
  Tensor out = broadcast_binary(a, b, "sub", kernels::Binary::Sub, [](float x, float y) { return x - y; });
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "sub", {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(neg(g), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  profile::OpScope profile_scope("mul");
  Tensor out = broadcast_binary(a, b, "mul", kernels::Binary::Mul, [](float x, float y) { return x * y; });
  Tensor as = a.detach(), bs = b.detach();
  return record(out, "mul", {a, b}, [as, bs](const Tensor& g, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? sum_to(mul(g, bs), as.shape()) : Tensor(),
                               needs[1] ? sum_to(mul(g, as), bs.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  profile::OpScope profile_scope("div");
  Tensor out = broadcast_binary(a, b, "div", kernels::Binary::Div, [](float x, float y) { return x / y; });
  Tensor as = a.detach(), bs = b.detach();
  return record(out, "div", {a, b}, [as, bs](const Tensor& g, const std::vector<bool>& needs) {
    Tensor ga, gb;
    if (needs[0]) ga = sum_to(div(g, bs), as.shape());
    if (needs[1]) gb = sum_to(neg(div(mul(g, as), mul(bs, bs))), bs.shape());
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor add(const Tensor& a, float b) {
  profile::OpScope profile_scope("add_scalar");
  Tensor out = scale_shift(a, 1.f, b);
  return record(out, "add_scalar", {a}, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g};
  });
}

Tensor mul(const Tensor& a, float b) {
  profile::OpScope profile_scope("mul_scalar");
  Tensor out = scale_shift(a, b, 0.f);
  return record(out, "mul_scalar", {a}, [b](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{scale_shift(g, b, 0.f)};
  });
}

Tensor neg(const Tensor& x) {
  profile::OpScope profile_scope("neg");
  Tensor out = scale_shift(x, -1.f, 0.f);
  return record(out, "neg", {x}, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{scale_shift(g, -1.f, 0.f)};
  });
}

Tensor exp(const Tensor& x) {
  return unary(x, "exp", [](float v) { return std::exp(v); }, [](float, float y) { return y; });
}

Tensor log(const Tensor& x) {
  return unary(x, "log", [](float v) { return std::log(v); }, [](float v, float) { return 1.f / v; });
}

Tensor sqrt(const Tensor& x) {
  return unary(x, "sqrt", [](float v) { return std::sqrt(v); }, [](float, float y) { return 0.5f / y; });
}

Tensor pow(const Tensor& x, float exponent) {
  return unary(
      x, "pow", [exponent](float v) { return std::pow(v, exponent); },
      [exponent](float v, float) { return exponent * std::pow(v, exponent - 1.f); });
}

Tensor abs(const Tensor& x) {
  return unary(x, "abs", [](float v) { return std::abs(v); },
               [](float v, float) { return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f); });
}

Tensor clamp(const Tensor& x, float min, float max) {
  SHEARS_CHECK(min <= max, "clamp", "min (", min, ") must not exceed max (", max, ")");
  return unary(x, "clamp", [min, max](float v) { return std::clamp(v, min, max); },
               [min, max](float v, float) { return v >= min && v <= max ? 1.f : 0.f; });
}

Tensor relu(const Tensor& x) { return relu_family(x, "relu", 0.f, INFINITY); }
Tensor relu6(const Tensor& x) { return relu_family(x, "relu6", 0.f, 6.f); }
Tensor leaky_relu(const Tensor& x, float slope) { return relu_family(x, "leaky_relu", slope, INFINITY); }

Tensor sigmoid(const Tensor& x) {
  return unary(x, "sigmoid", [](float v) { return 1.f / (1.f + std::exp(-v)); },
               [](float, float y) { return y * (1.f - y); });
}

Tensor tanh(const Tensor& x) {
  return unary(x, "tanh", [](float v) { return std::tanh(v); }, [](float, float y) { return 1.f - y * y; });
}

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  profile::OpScope profile_scope("dropout");
  SHEARS_CHECK(p >= 0.f && p <= 1.f, "dropout", "probability must be in [0, 1], got ", p);
  if (!training || p == 0.f) return x;
  // Inverted dropout: kept entries are scaled by 1/(1-p) so eval needs no rescaling.
  Tensor mask = Tensor::empty(x.shape());
  float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
  float* pm = mask.data();
  for (int64_t i = 0; i < mask.numel(); ++i) pm[i] = gen.uniform() >= p ? scale : 0.f;
  Tensor out = zip(x, mask, [](float v, float m) { return v * m; });
  return record(out, "dropout", {x}, [mask](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{zip(g, mask, [](float v, float m) { return v * m; })};
  });
}

}  // namespace shears
