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
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
// Whether V has a half-width vocabulary (AVX-512: AVX2's), for rows too narrow for a full vector.
template <typename V>
constexpr bool has_half = requires { typename V::half; };


// v, kept in a register: GCC folds a load that several FMAs use into each of them as a memory
// operand, which doubles the loads of a tile and makes it load-bound where a core issues one
// 512-bit load per cycle (AMD Zen 4).
template <typename V>
inline typename V::reg in_register(typename V::reg v) {
  asm("" : "+v"(v));
  return v;
}

// p, computed where it is used: otherwise GCC hoists every tap × segment address of a register
// tile out of the channel loop and spills them, one more load per input vector.
inline const float* in_register(const float* p) {
  asm("" : "+r"(p));
  return p;
}

// Applies body(offset, lanes) over [0, n) in full vectors, then one masked tail.
template <typename V, typename Body>
inline void for_each_vector(int64_t n, Body body) {
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) body(i, V::width);
  if (i < n) body(i, static_cast<int>(n - i));
}

// The lanes of a vector at offset i that fall inside [0, n): 0 to width.
template <typename V>
inline int lanes_within(int64_t i, int64_t n) {
  return static_cast<int>(i >= n ? 0 : min_i64(V::width, n - i));
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

// The mixed-precision kernels over D = V::f64x4 (Table::dot_f32_f64 and the two axpys).
template <typename D>
double dot_f32_f64(const float* g, const double* x, int64_t n) {
  typename D::reg a0 = D::set1(0.0), a1 = a0, a2 = a0, a3 = a0;  // independent chains keep the FMA units busy
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    a0 = D::fma(D::load(g + j), D::load(x + j), a0);
    a1 = D::fma(D::load(g + j + 4), D::load(x + j + 4), a1);
    a2 = D::fma(D::load(g + j + 8), D::load(x + j + 8), a2);
    a3 = D::fma(D::load(g + j + 12), D::load(x + j + 12), a3);
  }
  double s = D::hsum(D::add(D::add(a0, a1), D::add(a2, a3)));
  for (; j < n; ++j) s = __builtin_fma(static_cast<double>(g[j]), x[j], s);
  return s;
}

template <typename D>
void axpy_f32_f64(double a, const float* g, double* y, int64_t n) {
  const typename D::reg av = D::set1(a);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) D::store(y + j, D::fma(av, D::load(g + j), D::load(y + j)));
  for (; j < n; ++j) y[j] = __builtin_fma(a, static_cast<double>(g[j]), y[j]);
}

template <typename D>
void axpy4_f32_f64(const double* a, const float* const* g, double* y, int64_t n) {
  const typename D::reg a0 = D::set1(a[0]), a1 = D::set1(a[1]), a2 = D::set1(a[2]), a3 = D::set1(a[3]);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const typename D::reg t01 = D::fma(a0, D::load(g[0] + j), D::mul(a1, D::load(g[1] + j)));
    const typename D::reg t23 = D::fma(a2, D::load(g[2] + j), D::mul(a3, D::load(g[3] + j)));
    D::store(y + j, D::add(D::add(D::load(y + j), t01), t23));
  }
  for (; j < n; ++j) {
    const double t01 = __builtin_fma(a[0], static_cast<double>(g[0][j]), a[1] * g[1][j]);
    const double t23 = __builtin_fma(a[2], static_cast<double>(g[2][j]), a[3] * g[3][j]);
    y[j] += t01 + t23;
  }
}

template <typename V>
void affine2(const float* g, const float* x, float* dx, int64_t n, float a, float b, float c) {
  auto va = V::set1(a), vb = V::set1(b), vc = V::set1(c);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto r = V::fma(load_n<V>(g + i, lanes), va, V::fma(load_n<V>(x + i, lanes), vb, vc));
    store_n<V>(dx + i, r, lanes);
  });
}

// Stride 1 on the flat plane, without a padded copy: output vector v (pixels q = v·width + lane)
// takes tap (ki, kj) from x[q + (ki − 1)·W + kj − 1] where that pixel exists, the other lanes
// masked off in the load. The masks depend only on (H, W): built once per thread and shape,
// [vector][tap][lane].
template <typename V>
const int32_t* flat_tap_masks(int64_t H, int64_t W) {
  thread_local int32_t* masks = nullptr;
  thread_local int64_t capacity = 0, built_h = -1, built_w = -1;
  if (H == built_h && W == built_w) return masks;
  const int64_t HW = H * W, vectors = (HW + V::width - 1) / V::width, need = vectors * 9 * V::width;
  if (need > capacity) {
    delete[] masks;
    masks = new int32_t[need];
    capacity = need;
  }
  for (int64_t v = 0; v < vectors; ++v)
    for (int t = 0; t < 9; ++t)
      for (int lane = 0; lane < V::width; ++lane) {
        const int64_t q = v * V::width + lane, ih = q / W + t / 3 - 1, iw = q % W + t % 3 - 1;
        masks[(v * 9 + t) * V::width + lane] = q < HW && ih >= 0 && ih < H && iw >= 0 && iw < W ? -1 : 0;
      }
  built_h = H;
  built_w = W;
  return masks;
}

template <typename V>
void depthwise3x3_flat(const float* x, int64_t H, int64_t W, const float* w, float* y) {
  const int64_t HW = H * W;
  const int32_t* masks = flat_tap_masks<V>(H, W);
  typename V::reg wv[9];
  int64_t offset[9];
  for (int t = 0; t < 9; ++t) {
    wv[t] = V::set1(w[t]);
    offset[t] = (t / 3 - 1) * W + t % 3 - 1;
  }
  // Four output vectors at a time: one chain of nine FMAs each would wait on the FMA latency.
  constexpr int kGroup = 4;
  int64_t q = 0;
  for (; q + kGroup * V::width <= HW; q += kGroup * V::width) {
    typename V::reg acc[kGroup];
#pragma GCC unroll 4
    for (int u = 0; u < kGroup; ++u) acc[u] = V::zero();
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t)
#pragma GCC unroll 4
      for (int u = 0; u < kGroup; ++u) {
        const int64_t at = q + u * V::width;
        acc[u] = V::fma(wv[t], V::load_masked(x + at + offset[t], masks + (at * 9 + t * V::width)), acc[u]);
      }
#pragma GCC unroll 4
    for (int u = 0; u < kGroup; ++u) V::store(y + q + u * V::width, acc[u]);
  }
  for_each_vector<V>(HW - q, [&](int64_t i, int lanes) {
    const int64_t at = q + i;
    auto acc = V::zero();
    for (int t = 0; t < 9; ++t)
      acc = V::fma(wv[t], V::load_masked(x + at + offset[t], masks + (at * 9 + t * V::width)), acc);
    store_n<V>(y + at, acc, lanes);
  });
}

// Stride 1 when rows are whole vectors (W a multiple of the width): the three taps of an input
// row segment are the segment and its copies shifted by one column, read by unaligned loads
// inside the row and made by a lane shift (bringing in the zero padding) at the row's edges.
template <typename V>
inline void row_taps(const float* r, int64_t s, int64_t per_row, typename V::reg (&tap)[3]) {
  tap[1] = V::load(r);
  tap[0] = s == 0 ? V::shift_up(tap[1]) : V::load(r - 1);
  tap[2] = s == per_row - 1 ? V::shift_down(tap[1]) : V::load(r + 1);
}

// Down one column of segments, each input row's taps are made once and feed the three output
// rows that read them: ih + 1 (kernel row 0, a new sum), ih (row 1) and ih − 1 (row 2, then
// stored). A row costs one load, at most two shifts and nine FMAs.
template <typename V>
void depthwise3x3_rows(const float* x, int64_t H, int64_t W, const float* w, float* y) {
  const int64_t per_row = W / V::width;
  typename V::reg wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = V::set1(w[t]);
  for (int64_t s = 0; s < per_row; ++s) {
    const float* xs = x + s * V::width;
    float* ys = y + s * V::width;
    auto above = V::zero(), here = V::zero();  // output rows ih − 1 and ih, summed so far
    for (int64_t ih = 0; ih < H; ++ih) {
      typename V::reg tap[3];
      row_taps<V>(xs + ih * W, s, per_row, tap);
      const auto below = V::fma(wv[0], tap[0], V::fma(wv[1], tap[1], V::mul(wv[2], tap[2])));
      here = V::fma(wv[3], tap[0], V::fma(wv[4], tap[1], V::fma(wv[5], tap[2], here)));
      if (ih > 0) V::store(ys + (ih - 1) * W, V::fma(wv[6], tap[0], V::fma(wv[7], tap[1], V::fma(wv[8], tap[2], above))));
      above = here;
      here = below;
    }
    V::store(ys + (H - 1) * W, above);  // the last row's kernel row 2 reads the zero padding
  }
}

// Stride 2: output column ow reads input columns 2·ow − 1, 2·ow and 2·ow + 1, which are the odd
// columns shifted up a lane, the even and the odd columns of the row split by deinterleave.
template <typename V>
inline void stride2_taps(const float* r, int64_t W, int64_t ow, typename V::reg (&tap)[3]) {
  const int64_t c = 2 * ow;
  const auto first = load_n<V>(r + c, lanes_within<V>(c, W));  // columns past W read as the zero padding
  const auto second = load_n<V>(r + c + V::width, lanes_within<V>(c + V::width, W));
  V::deinterleave(first, second, tap[1], tap[2]);
  tap[0] = V::shift_up(tap[2], ow > 0 ? r[c - 1] : 0.f);
}

// Down one column of output segments: input row ih is kernel row 1 of output row ih/2 when even;
// when odd, kernel row 2 of (ih − 1)/2 (then stored) and row 0 of (ih + 1)/2. Each row's three
// taps are summed apart from the running row, so the chain through it is one add per input row.
template <typename V>
void depthwise3x3_stride2(const float* x, int64_t H, int64_t W, const float* w, float* y) {
  const int64_t H_out = (H - 1) / 2 + 1, W_out = (W - 1) / 2 + 1;
  typename V::reg wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = V::set1(w[t]);
  auto kernel_row = [&](int ki, const typename V::reg (&tap)[3]) {
    return V::fma(wv[3 * ki], tap[0], V::fma(wv[3 * ki + 1], tap[1], V::mul(wv[3 * ki + 2], tap[2])));
  };
  for (int64_t ow = 0; ow < W_out; ow += V::width) {
    const int lanes = static_cast<int>(min_i64(V::width, W_out - ow));
    auto acc = V::zero();  // output row (ih + 1)/2 so far; row −1 is padding
    for (int64_t ih = 0; ih < H; ++ih) {
      typename V::reg tap[3];
      stride2_taps<V>(x + ih * W, W, ow, tap);
      if (ih % 2 == 0) {
        acc = V::add(acc, kernel_row(1, tap));
      } else {
        store_n<V>(y + ih / 2 * W_out + ow, V::add(acc, kernel_row(2, tap)), lanes);
        acc = kernel_row(0, tap);
      }
    }
    if (H % 2 == 1) store_n<V>(y + (H_out - 1) * W_out + ow, acc, lanes);  // its row 2 is padding
  }
}

template <typename V>
void depthwise3x3(const float* x, int64_t H, int64_t W, const float* w, float* y, int64_t stride) {
  if (stride == 1 && W % V::width == 0) return depthwise3x3_rows<V>(x, H, W, w, y);
  if constexpr (has_half<V>)
    if (stride == 1 && W % V::half::width == 0) return depthwise3x3_rows<typename V::half>(x, H, W, w, y);
  if (stride == 1) return depthwise3x3_flat<V>(x, H, W, w, y);
  if constexpr (has_half<V>)  // rows of at most half a vector: fewer idle lanes
    if ((W - 1) / stride + 1 <= V::half::width) return depthwise3x3<typename V::half>(x, H, W, w, y, stride);
  depthwise3x3_stride2<V>(x, H, W, w, y);
}

// Stride 1: dx is the forward correlation of dy with the kernel flipped in both axes.
// Stride 2: input row ih is kernel row ki of output row oh where ih = 2·oh + ki − 1, so an even
// row is the middle row of one output row and an odd one the bottom and the top rows of two; the
// same holds for columns. Each dx pixel gathers its at most 2 × 2 terms: even column 2m takes
// kj = 1 of dy[m], odd column 2m + 1 takes kj = 2 of dy[m] and kj = 0 of dy[m + 1]. (Scattering
// each dy row into a padded copy took 1.7× as long: BM_conv2d_bwd/mobilenet_dw3x3_128_s2.)
template <typename V>
void depthwise3x3_backward_input(const float* dy, int64_t H, int64_t W, const float* w, float* dx, int64_t stride) {
  if (stride == 1) {
    float flipped[9];
    for (int k = 0; k < 9; ++k) flipped[k] = w[8 - k];
    return depthwise3x3<V>(dy, H, W, flipped, dx, 1);
  }
  const int64_t H_out = (H - 1) / 2 + 1, W_out = (W - 1) / 2 + 1;
  for (int64_t ih = 0; ih < H; ++ih) {
    float* out = dx + ih * W;
    for (int64_t iw = 0; iw < W; ++iw) out[iw] = 0.f;
    for (int ki = 0; ki < 3; ++ki) {
      const int64_t t = ih + 1 - ki, oh = t / 2;
      if (t < 0 || t % 2 != 0 || oh >= H_out) continue;
      const float* g = dy + oh * W_out;
      const float w0 = w[ki * 3], w1 = w[ki * 3 + 1], w2 = w[ki * 3 + 2];
      for (int64_t m = 0; 2 * m < W; ++m) out[2 * m] += w1 * g[m];
      for (int64_t m = 0; 2 * m + 1 < W; ++m) out[2 * m + 1] += w2 * g[m] + (m + 1 < W_out ? w0 * g[m + 1] : 0.f);
    }
  }
}

// The weight gradient accumulates the nine taps over `count` planes (strides x_step, dy_step)
// before reducing the lanes, so the horizontal sums run once per channel. Whole-vector rows (as in
// depthwise3x3_rows): each input row's taps are made once and meet the dy rows that read them.
template <typename V>
void depthwise3x3_backward_weight_rows(const float* dy, const float* x, int64_t H, int64_t W, float* dw,
                                       int64_t count, int64_t x_step, int64_t dy_step) {
  const int64_t per_row = W / V::width;
  constexpr int64_t kAhead = 6;
  typename V::reg acc[9], tap[3];
  for (auto& a : acc) a = V::zero();
  for (int64_t p = 0; p < count; ++p) {
    const float* xp = x + p * x_step;
    const float* gp = dy + p * dy_step;
    // One channel's planes lie a sample apart, beyond the hardware prefetcher: ask for the planes
    // kAhead samples on (6 measured best: `make bench`, BM_conv2d_bwd/mobilenet_dw3x3_256).
    if (p + kAhead < count)
      for (int64_t i = 0; i < H * W; i += 16) {
        __builtin_prefetch(xp + kAhead * x_step + i);
        __builtin_prefetch(gp + kAhead * dy_step + i);
      }
    for (int64_t s = 0; s < per_row; ++s)
      for (int64_t ih = 0; ih < H; ++ih) {
        row_taps<V>(xp + ih * W + s * V::width, s, per_row, tap);
        for (int ki = 0; ki < 3; ++ki) {  // the output row oh that reads input row ih at kernel row ki
          const int64_t oh = ih + 1 - ki;
          if (oh < 0 || oh >= H) continue;
          const auto g = V::load(gp + oh * W + s * V::width);
          for (int kj = 0; kj < 3; ++kj) acc[ki * 3 + kj] = V::fma(g, tap[kj], acc[ki * 3 + kj]);
        }
      }
  }
  for (int t = 0; t < 9; ++t) dw[t] += V::hsum(acc[t]);
}

template <typename V>
void depthwise3x3_backward_weight(const float* dy, const float* x, int64_t H, int64_t W, float* dw, int64_t stride,
                                  int64_t count, int64_t x_step, int64_t dy_step) {
  if (stride == 1 && W % V::width == 0)
    return depthwise3x3_backward_weight_rows<V>(dy, x, H, W, dw, count, x_step, dy_step);
  if constexpr (has_half<V>)
    if (stride == 1 && W % V::half::width == 0)
      return depthwise3x3_backward_weight_rows<typename V::half>(dy, x, H, W, dw, count, x_step, dy_step);
  if constexpr (has_half<V>)
    if (stride != 1 && (W - 1) / stride + 1 <= V::half::width)
      return depthwise3x3_backward_weight<typename V::half>(dy, x, H, W, dw, stride, count, x_step, dy_step);
  if (stride == 1) {  // the flat plane's masked taps, as in depthwise3x3_flat
    const int64_t HW = H * W;
    const int32_t* masks = flat_tap_masks<V>(H, W);
    typename V::reg acc[9];
    int64_t offset[9];
    for (int t = 0; t < 9; ++t) {
      acc[t] = V::zero();
      offset[t] = (t / 3 - 1) * W + t % 3 - 1;
    }
    for (int64_t p = 0; p < count; ++p) {
      const float* xp = x + p * x_step;
      const float* gp = dy + p * dy_step;
      for_each_vector<V>(HW, [&](int64_t q, int lanes) {
        const auto g = load_n<V>(gp + q, lanes);  // zero in tail lanes
        const int32_t* m = masks + q * 9;
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) acc[t] = V::fma(g, V::load_masked(xp + q + offset[t], m + t * V::width), acc[t]);
      });
    }
    for (int t = 0; t < 9; ++t) dw[t] += V::hsum(acc[t]);
    return;
  }
  // Stride 2: the taps of each input row as in depthwise3x3_stride2, against the dy rows they
  // feed (kernel row 1 of row ih/2 when ih is even; rows 2 and 0 of (ih ∓ 1)/2 when odd).
  const int64_t H_out = (H - 1) / 2 + 1, W_out = (W - 1) / 2 + 1;
  constexpr int64_t kAhead = 6;
  typename V::reg acc[9];
  for (auto& a : acc) a = V::zero();
  for (int64_t p = 0; p < count; ++p) {
    if (p + kAhead < count) {  // as in depthwise3x3_backward_weight_rows
      for (int64_t i = 0; i < H * W; i += 16) __builtin_prefetch(x + (p + kAhead) * x_step + i);
      for (int64_t i = 0; i < H_out * W_out; i += 16) __builtin_prefetch(dy + (p + kAhead) * dy_step + i);
    }
    const float* xp = x + p * x_step;
    const float* gp = dy + p * dy_step;
    for (int64_t ow = 0; ow < W_out; ow += V::width) {
      const int lanes = static_cast<int>(min_i64(V::width, W_out - ow));
      auto add_row = [&](int ki, int64_t oh, const typename V::reg (&tap)[3]) {
        const auto g = load_n<V>(gp + oh * W_out + ow, lanes);  // zero in tail lanes
        for (int kj = 0; kj < 3; ++kj) acc[ki * 3 + kj] = V::fma(g, tap[kj], acc[ki * 3 + kj]);
      };
      for (int64_t ih = 0; ih < H; ++ih) {
        typename V::reg tap[3];
        stride2_taps<V>(xp + ih * W, W, ow, tap);
        if (ih % 2 == 0) {
          add_row(1, ih / 2, tap);
        } else {
          add_row(2, ih / 2, tap);
          if (ih / 2 + 1 < H_out) add_row(0, ih / 2 + 1, tap);
        }
      }
    }
  }
  for (int k = 0; k < 9; ++k) dw[k] += V::hsum(acc[k]);
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS

// The direct 3×3 convolutions, written over the helpers above.
#include "core/kernels/conv3x3_impl.hpp"

namespace shears::kernels::SHEARS_KERNEL_NS {

template <typename V>
void exp_kernel(const float* x, float* y, int64_t n) {
  for_each_vector<V>(n, [&](int64_t i, int lanes) { store_n<V>(y + i, V::exp(load_n<V>(x + i, lanes)), lanes); });
}

// Per row: m = max, s = Σ exp(x − m) (float lanes, then double), y = x − m − log s.
template <typename V>
void log_softmax_rows(const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    auto vmax = V::set1(-__builtin_inff());
    int64_t i = 0;
    for (; i + V::width <= cols; i += V::width) vmax = V::max(vmax, V::load(xr + i));
    float m = V::hmax(vmax);
    for (; i < cols; ++i) m = xr[i] > m ? xr[i] : m;
    auto vm = V::set1(m);
    double total = blocked_sum<V>(cols, [&](int64_t i, int lanes) {
      return V::mul(V::exp(V::sub(load_n<V>(xr + i, lanes), vm)), lane_mask<V>(lanes));
    });
    auto shift = V::set1(m + static_cast<float>(__builtin_log(total)));
    for_each_vector<V>(cols, [&](int64_t i, int lanes) { store_n<V>(yr + i, V::sub(load_n<V>(xr + i, lanes), shift), lanes); });
  }
}

template <typename V>
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SgdStep& s) {
  auto wd = V::set1(s.weight_decay), mom = V::set1(s.momentum), damp = V::set1(1.f - s.dampening);
  auto neg_lr = V::set1(-s.lr);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto pv = load_n<V>(p + i, lanes);
    auto d = V::fma(wd, pv, load_n<V>(g + i, lanes));
    if (s.momentum != 0.f) {
      auto b = s.first ? d : V::fma(mom, load_n<V>(buf + i, lanes), V::mul(damp, d));
      store_n<V>(buf + i, b, lanes);
      d = s.nesterov ? V::fma(mom, b, d) : b;
    }
    store_n<V>(p + i, V::fma(neg_lr, d, pv), lanes);
  });
}

template <typename V>
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s) {
  double t = static_cast<double>(s.step);
  float bias1 = static_cast<float>(1.0 - __builtin_pow(s.beta1, t));
  float bias2_sqrt = static_cast<float>(__builtin_sqrt(1.0 - __builtin_pow(s.beta2, t)));
  auto b1 = V::set1(s.beta1), one_b1 = V::set1(1.f - s.beta1), b2 = V::set1(s.beta2), one_b2 = V::set1(1.f - s.beta2);
  auto wd = V::set1(s.decoupled ? 0.f : s.weight_decay), decay = V::set1(s.decoupled ? 1.f - s.lr * s.weight_decay : 1.f);
  auto inv_bias2_sqrt = V::set1(1.f / bias2_sqrt), eps = V::set1(s.eps), neg_step = V::set1(-s.lr / bias1);
  for_each_vector<V>(n, [&](int64_t i, int lanes) {
    auto pv = V::mul(load_n<V>(p + i, lanes), decay);
    auto gv = V::fma(wd, pv, load_n<V>(g + i, lanes));
    auto mv = V::fma(b1, load_n<V>(m + i, lanes), V::mul(one_b1, gv));
    auto vv = V::fma(b2, load_n<V>(v + i, lanes), V::mul(one_b2, V::mul(gv, gv)));
    store_n<V>(m + i, mv, lanes);
    store_n<V>(v + i, vv, lanes);
    auto denom = V::fma(V::sqrt(vv), inv_bias2_sqrt, eps);
    store_n<V>(p + i, V::fma(neg_step, V::div(mv, denom), pv), lanes);
  });
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS

#include "core/kernels/sparse_impl.hpp"

namespace shears::kernels::SHEARS_KERNEL_NS {

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
               dot_f32_f64<typename V::f64x4>,
               axpy_f32_f64<typename V::f64x4>,
               axpy4_f32_f64<typename V::f64x4>,
               affine2<V>,
               depthwise3x3<V>,
               depthwise3x3_backward_input<V>,
               depthwise3x3_backward_weight<V>,
               conv3x3<V>,
               conv3x3_small<V>,
               kSmallVec * V::width,
               conv3x3_backward_weight<V>,
               conv3x3_backward_weight_small<V>,
               stride2_planes<V>,
               merge_even_odd<V>,
               exp_kernel<V>,
               log_softmax_rows<V>,
               csr_times_dense<V>,
               csr_times_vector<V>,
               csr_sampled_dots<V>,
               transpose<V>,
               sgd_step<V>,
               adam_step<V>};
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS
