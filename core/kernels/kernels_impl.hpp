// Kernel templates over a SIMD vocabulary V (core/simd/simd.hpp). Included only by the
// per-ISA translation units core/kernels/isa_*.cpp, each compiled with its own flags.
// Everything here lives in a namespace named per ISA (SHEARS_KERNEL_NS) and uses no standard
// library templates: an inline function emitted by the AVX-512 unit must never be the copy the
// linker keeps for the others.
#pragma once
#include <cstdint>

#include "core/kernels/kernels.hpp"
#include "core/simd/simd.hpp"

#ifndef SHEARS_KERNEL_NS
#error "define SHEARS_KERNEL_NS before including kernels_impl.hpp"
#endif

namespace shears::kernels::SHEARS_KERNEL_NS {

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// A zero-filled float scratch buffer.
class Scratch {
 public:
  explicit Scratch(int64_t n) : data_(new float[n]()) {}
  ~Scratch() { delete[] data_; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* data() { return data_; }

 private:
  float* data_;
};

// Applies body(offset, lanes) over [0, n) in full vectors, then one masked tail.
template <typename V, typename Body>
inline void for_each_vector(int64_t n, Body body) {
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) body(i, V::width);
  if (i < n) body(i, static_cast<int>(n - i));
}

template <typename V>
inline typename V::reg load_n(const float* p, int lanes) {
  return lanes == V::width ? V::load(p) : V::load_tail(p, lanes);
}
template <typename V>
inline void store_n(float* p, typename V::reg v, int lanes) {
  if (lanes == V::width)
    V::store(p, v);
  else
    V::store_tail(p, v, lanes);
}

template <typename V, typename Op>
void binary_loop(const float* a, const float* b, float* out, int64_t n, Op op) {
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    store_n<V>(out + i, op(load_n<V>(a + i, lanes), load_n<V>(b + i, lanes)), lanes);
  });
}

template <typename V>
void binary(Binary op, const float* a, const float* b, float* out, int64_t n) {
  switch (op) {
    case Binary::Add: return binary_loop<V>(a, b, out, n, V::add);
    case Binary::Sub: return binary_loop<V>(a, b, out, n, V::sub);
    case Binary::Mul: return binary_loop<V>(a, b, out, n, V::mul);
    case Binary::Div:  // masked tail lanes would divide 0 by 0: harmless, never stored
      return binary_loop<V>(a, b, out, n, V::div);
  }
}

template <typename V>
void binary_scalar(Binary op, const float* a, float s, float* out, int64_t n) {
  auto vs = V::set1(s);
  auto run = [&](auto f) {
    for_each_vector<V>(n, [&](int64_t i, int lanes) { store_n<V>(out + i, f(load_n<V>(a + i, lanes), vs), lanes); });
  };
  switch (op) {
    case Binary::Add: return run(V::add);
    case Binary::Sub: return run(V::sub);
    case Binary::Mul: return run(V::mul);
    case Binary::Div: return run(V::div);
  }
}

template <typename V>
void scale_shift(const float* x, float* y, int64_t n, float scale, float shift) {
  auto a = V::set1(scale), b = V::set1(shift);
  for_each_vector<V>(n, [&](int64_t i, int lanes) { store_n<V>(y + i, V::fma(load_n<V>(x + i, lanes), a, b), lanes); });
}

template <typename V>
void relu_family(const float* x, float* y, int64_t n, float slope, float upper) {
  auto zero = V::zero(), s = V::set1(slope), hi = V::set1(upper);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto v = load_n<V>(x + i, lanes);
    auto positive = V::min(V::max(v, zero), hi);
    store_n<V>(y + i, V::fma(V::min(v, zero), s, positive), lanes);
  });
}

template <typename V>
void relu_family_backward(const float* x, const float* g, float* dx, int64_t n, float slope, float upper) {
  auto zero = V::zero(), s = V::set1(slope), hi = V::set1(upper);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto v = load_n<V>(x + i, lanes), gv = load_n<V>(g + i, lanes);
    auto pass = V::cmp_gt_select(hi, v, V::cmp_gt_select(v, zero, gv));  // 0 < x < upper
    auto leak = V::mul(V::sub(gv, V::cmp_gt_select(v, zero, gv)), s);    // x ≤ 0
    store_n<V>(dx + i, V::add(pass, leak), lanes);
  });
}

// Sums f(i, lanes) over [0, n): float lanes within blocks of 4096 elements, blocks in double.
template <typename V, typename Term>
double blocked_sum(int64_t n, Term term) {
  constexpr int64_t kBlock = 4096;
  double total = 0.0;
  for (int64_t start = 0; start < n; start += kBlock) {
    int64_t len = min_i64(kBlock, n - start);
    auto acc0 = V::zero(), acc1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * V::width <= len; i += 2 * V::width) {
      acc0 = V::add(acc0, term(start + i, V::width));
      acc1 = V::add(acc1, term(start + i + V::width, V::width));
    }
    for (; i < len; i += V::width) acc0 = V::add(acc0, term(start + i, static_cast<int>(min_i64(V::width, len - i))));
    total += V::hsum(V::add(acc0, acc1));
  }
  return total;
}

template <typename V>
double sum(const float* x, int64_t n) {
  return blocked_sum<V>(n, [&](int64_t i, int lanes) { return load_n<V>(x + i, lanes); });
}

// 1 in the first `lanes` lanes, 0 elsewhere: zeroes the lanes a masked tail did not load.
template <typename V>
inline typename V::reg lane_mask(int lanes) {
  static constexpr float kOnes[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  return lanes == V::width ? V::set1(1.f) : V::load_tail(kOnes, lanes);
}

template <typename V>
double sum_squared_deviation(const float* x, int64_t n, float mean) {
  auto m = V::set1(mean);
  return blocked_sum<V>(n, [&](int64_t i, int lanes) {
    auto d = V::mul(V::sub(load_n<V>(x + i, lanes), m), lane_mask<V>(lanes));
    return V::mul(d, d);
  });
}

template <typename V>
double dot(const float* a, const float* b, int64_t n) {
  return blocked_sum<V>(n, [&](int64_t i, int lanes) { return V::mul(load_n<V>(a + i, lanes), load_n<V>(b + i, lanes)); });
}

template <typename V>
double dot_centered(const float* g, const float* x, int64_t n, float mean) {
  auto m = V::set1(mean);
  return blocked_sum<V>(n, [&](int64_t i, int lanes) {
    return V::mul(load_n<V>(g + i, lanes), V::sub(load_n<V>(x + i, lanes), m));  // g is 0 in tail lanes
  });
}

template <typename V>
void affine2(const float* g, const float* x, float* dx, int64_t n, float a, float b, float c) {
  auto va = V::set1(a), vb = V::set1(b), vc = V::set1(c);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto r = V::fma(load_n<V>(g + i, lanes), va, V::fma(load_n<V>(x + i, lanes), vb, vc));
    store_n<V>(dx + i, r, lanes);
  });
}

// Depthwise 3×3, padding 1. The plane is copied into zero-padded rows so that every tap of
// output row oh, kernel row ki, column kj is a contiguous run `tap(s·oh + ki, kj)[ow]`:
//   stride 1: tap(r, kj) = padded row r shifted by kj;
//   stride 2: padded rows are split into even and odd columns, tap(r, 0) = even, tap(r, 1) = odd,
//             tap(r, 2) = even shifted by one.
struct TapRows {
  int64_t rows, stride, W_out, row_len;
  Scratch buf;
  TapRows(int64_t H, int64_t W, int64_t s)
      : rows(H + 2), stride(s), W_out((W - 1) / s + 1), row_len(s == 1 ? W + 2 : 2 * (W_out + 1)),
        buf(rows * row_len) {}
  float* tap(int64_t r, int64_t kj) {
    float* row = buf.data() + r * row_len;
    if (stride == 1) return row + kj;
    return kj == 1 ? row + W_out + 1 : row + kj / 2;
  }
  // Padded-column index c of row r, for the copy in and out.
  float& at(int64_t r, int64_t c) {
    float* row = buf.data() + r * row_len;
    if (stride == 1) return row[c];
    return c % 2 == 0 ? row[c / 2] : row[W_out + 1 + c / 2];
  }
  void load(const float* x, int64_t H, int64_t W) {
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t iw = 0; iw < W; ++iw) at(ih + 1, iw + 1) = x[ih * W + iw];
  }
  void store_interior(float* x, int64_t H, int64_t W) {
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t iw = 0; iw < W; ++iw) x[ih * W + iw] += at(ih + 1, iw + 1);
  }
};

template <typename V>
void depthwise3x3(const float* x, int64_t H, int64_t W, const float* w, float* y, int64_t stride) {
  TapRows taps(H, W, stride);
  taps.load(x, H, W);
  int64_t H_out = (H - 1) / stride + 1, W_out = taps.W_out;
  typename V::reg wv[9];
  for (int k = 0; k < 9; ++k) wv[k] = V::set1(w[k]);
  for (int64_t oh = 0; oh < H_out; ++oh) {
    const float* t[9];
    for (int ki = 0; ki < 3; ++ki)
      for (int kj = 0; kj < 3; ++kj) t[ki * 3 + kj] = taps.tap(stride * oh + ki, kj);
    for_each_vector<V>(W_out, [&](int64_t i, int lanes) {
      auto acc = V::zero();
      for (int k = 0; k < 9; ++k) acc = V::fma(wv[k], load_n<V>(t[k] + i, lanes), acc);
      store_n<V>(y + oh * W_out + i, acc, lanes);
    });
  }
}

template <typename V>
void depthwise3x3_backward_input(const float* dy, int64_t H, int64_t W, const float* w, float* dx, int64_t stride) {
  TapRows taps(H, W, stride);
  int64_t H_out = (H - 1) / stride + 1, W_out = taps.W_out;
  for (int64_t oh = 0; oh < H_out; ++oh)
    for (int ki = 0; ki < 3; ++ki)
      for (int kj = 0; kj < 3; ++kj) {
        float* t = taps.tap(stride * oh + ki, kj);
        auto wk = V::set1(w[ki * 3 + kj]);
        for_each_vector<V>(W_out, [&](int64_t i, int lanes) {
          store_n<V>(t + i, V::fma(wk, load_n<V>(dy + oh * W_out + i, lanes), load_n<V>(t + i, lanes)), lanes);
        });
      }
  taps.store_interior(dx, H, W);
}

template <typename V>
void depthwise3x3_backward_weight(const float* dy, const float* x, int64_t H, int64_t W, float* dw, int64_t stride) {
  TapRows taps(H, W, stride);
  taps.load(x, H, W);
  int64_t H_out = (H - 1) / stride + 1, W_out = taps.W_out;
  typename V::reg acc[9];
  for (auto& a : acc) a = V::zero();
  for (int64_t oh = 0; oh < H_out; ++oh)
    for_each_vector<V>(W_out, [&](int64_t i, int lanes) {
      auto g = load_n<V>(dy + oh * W_out + i, lanes);  // zero in tail lanes
      for (int ki = 0; ki < 3; ++ki)
        for (int kj = 0; kj < 3; ++kj)
          acc[ki * 3 + kj] = V::fma(g, load_n<V>(taps.tap(stride * oh + ki, kj) + i, lanes), acc[ki * 3 + kj]);
    });
  for (int k = 0; k < 9; ++k) dw[k] += V::hsum(acc[k]);
}

template <typename V>
Table make_table(Isa isa) {
  return Table{isa,
               binary<V>,
               binary_scalar<V>,
               scale_shift<V>,
               relu_family<V>,
               relu_family_backward<V>,
               sum<V>,
               sum_squared_deviation<V>,
               dot<V>,
               dot_centered<V>,
               affine2<V>,
               depthwise3x3<V>,
               depthwise3x3_backward_input<V>,
               depthwise3x3_backward_weight<V>};
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS
