// The direct 3×3 convolution kernels (kernels.hpp: conv3x3, conv3x3_small, the weight
// gradients, the stride-2 planes and merge_even_odd). Part of core/kernels/kernels_impl.hpp,
// which includes it after the helpers it uses; the same rules hold (a namespace per ISA, no
// standard library templates).
#pragma once
#include <cstdint>

#include "core/kernels/kernels.hpp"
#include "core/simd/simd.hpp"

namespace shears::kernels::SHEARS_KERNEL_NS {

// Direct 3×3 convolution (see kernels.hpp). The output is cut into segments of one vector along
// a row (the last of a row may be partial); a register tile holds kOut output channels × kSeg
// segments and runs through every input channel and tap, loading each input vector once for
// kOut FMAs and each broadcast weight once for kSeg. The tile fits the vector registers: 16 (4×3
// accumulators, 3 inputs, a weight), or 32 under AVX-512, whose EVEX encoding gives the
// half-width kernels ymm16–31 too: there 4×4, so that the 8, 16 and 64 segments of 8×8, 16×16
// and 32×32 maps split evenly (8×3 measured no faster). core/ops/conv2d.cpp packs the weights in
// blocks of kConvOut = 4. The weight gradient's tile is kWeightOut × 3 (below).
#ifdef __AVX512F__
constexpr int kConvOut = 4, kConvSeg = 4, kWeightOut = 8;
#else
constexpr int kConvOut = 4, kConvSeg = 3, kWeightOut = 4;
#endif

// The channel × tap loop of the direct 3×3 register tiles: body(base, w) for every input channel
// c in [c0, c1) and tap k, base = channel c's plane at tap k, w = the packed weights of (c, k)
// (kBlock floats).
template <int64_t kBlock, int kTaps, typename Body>
inline void for_each_channel_tap(const float* xp, const Conv3x3Input& in, int64_t c0, int64_t c1, const float* wb,
                                 Body body) {
  for (int64_t c = c0; c < c1; ++c) {
    const float* xc = xp + c * in.plane;
    const float* wc = wb + c * kTaps * kBlock;
#pragma GCC unroll 9
    for (int k = 0; k < kTaps; ++k) body(in_register(xc + in.tap[k]), wc + k * kBlock);
  }
}

template <typename V, int kTaps>
void conv3x3_taps(const float* xp, const Conv3x3Input& in, int64_t H, int64_t W, const float* wp, int64_t M, float* y) {
  const int64_t C = in.C, per_row = (W + V::width - 1) / V::width, segments = H * per_row;
  // Flat layouts (row 0): input channels in chunks whose planes fit L1 (32 KiB), since every
  // tile reads its chunk's planes whole, again for every block of output channels; chunks after
  // the first add to y. Rows (row > 0): a tile reads a few rows, which the next tile reuses.
  const int64_t chunk = in.row == 0 ? max_i64(1, 8192 / in.plane) : C;
  for (int64_t c0 = 0; c0 < C; c0 += chunk)
    for (int64_t ob = 0; ob < M; ob += kConvOut) {
      const float* wb = wp + (ob / kConvOut) * C * kTaps * kConvOut;
      const int64_t rows = min_i64(kConvOut, M - ob);
      for (int64_t s0 = 0; s0 < segments; s0 += kConvSeg) {
        int64_t at[kConvSeg], out[kConvSeg];
        int lanes[kConvSeg];
        for (int t = 0; t < kConvSeg; ++t) {  // a short last tile repeats its last segment
          const int64_t s = min_i64(s0 + t, segments - 1), oh = s / per_row, ow = (s % per_row) * V::width;
          at[t] = oh * in.row + ow;
          out[t] = oh * W + ow;
          lanes[t] = static_cast<int>(min_i64(V::width, W - ow));
        }
        typename V::reg acc[kConvOut][kConvSeg];
#pragma GCC unroll 4
        for (int r = 0; r < kConvOut; ++r)
#pragma GCC unroll 4
          for (int t = 0; t < kConvSeg; ++t)
            acc[r][t] = c0 == 0 || r >= rows ? V::zero() : load_n<V>(y + (ob + r) * H * W + out[t], lanes[t]);
        for_each_channel_tap<kConvOut, kTaps>(xp, in, c0, min_i64(C, c0 + chunk), wb, [&](const float* base,
                                                                                         const float* wt) {
          typename V::reg xv[kConvSeg];
#pragma GCC unroll 4
          for (int t = 0; t < kConvSeg; ++t) xv[t] = V::load(base + at[t]);
#pragma GCC unroll 4
          for (int r = 0; r < kConvOut; ++r) {
            const auto wv = V::set1(wt[r]);
#pragma GCC unroll 4
            for (int t = 0; t < kConvSeg; ++t) acc[r][t] = V::fma(wv, xv[t], acc[r][t]);
          }
        });
        for (int64_t r = 0; r < rows; ++r)
          for (int t = 0; t < kConvSeg; ++t) store_n<V>(y + (ob + r) * H * W + out[t], acc[r][t], lanes[t]);
      }
    }
}

template <typename V>
void conv3x3(const float* xp, const Conv3x3Input& in, int64_t H, int64_t W, const float* wp, int64_t M, float* y) {
  switch (in.taps) {  // the stride-2 input gradient's phases take 1, 2 or 4 of the 9 (core/ops/conv2d.cpp)
    case 1: return conv3x3_taps<V, 1>(xp, in, H, W, wp, M, y);
    case 2: return conv3x3_taps<V, 2>(xp, in, H, W, wp, M, y);
    case 4: return conv3x3_taps<V, 4>(xp, in, H, W, wp, M, y);
    default: return conv3x3_taps<V, 9>(xp, in, H, W, wp, M, y);
  }
}

// Direct 3×3 convolution of small maps (rows under 8 wide: VGG's and ResNet-18's 4×4 and 2×2),
// whose rows would leave most lanes of a vector along the row idle. The vectors run across
// output channels instead: a register tile holds kSmallVec vectors of output channels × kSmallPix
// output pixels, loading each weight vector once for kSmallPix FMAs and broadcasting each input
// value once for kSmallVec. Weights packed [⌈M/b⌉][C][9][b], b = kSmallVec · width.
#ifdef __AVX512F__
constexpr int kSmallVec = 4, kSmallPix = 4;
#else
constexpr int kSmallVec = 2, kSmallPix = 4;
#endif

template <typename V>
void conv3x3_small(const float* xp, const Conv3x3Input& in, int64_t H, int64_t W, const float* wp, int64_t M,
                   float* y) {
  constexpr int64_t block = kSmallVec * V::width;
  const int64_t C = in.C, P = H * W;
  for (int64_t ob = 0; ob < M; ob += block) {
    const float* wb = wp + ob / block * C * 9 * block;
    for (int64_t p0 = 0; p0 < P; p0 += kSmallPix) {
      int64_t at[kSmallPix];
      for (int t = 0; t < kSmallPix; ++t) {  // a short last tile repeats its last pixel
        const int64_t p = min_i64(p0 + t, P - 1);
        at[t] = p / W * in.row + p % W;
      }
      typename V::reg acc[kSmallVec][kSmallPix];
#pragma GCC unroll 4
      for (auto& row : acc)
#pragma GCC unroll 4
        for (auto& a : row) a = V::zero();
      for_each_channel_tap<block, 9>(xp, in, 0, in.C, wb, [&](const float* base, const float* wk) {
        typename V::reg wv[kSmallVec];
#pragma GCC unroll 4
        for (int v = 0; v < kSmallVec; ++v) wv[v] = in_register<V>(V::load(wk + v * V::width));
#pragma GCC unroll 4
        for (int t = 0; t < kSmallPix; ++t) {
          const auto xv = V::set1(base[at[t]]);
#pragma GCC unroll 4
          for (int v = 0; v < kSmallVec; ++v) acc[v][t] = V::fma(wv[v], xv, acc[v][t]);
        }
      });
      float lanes[V::width];  // each vector is one pixel of width output channels: written out per lane
      for (int v = 0; v < kSmallVec; ++v)
        for (int t = 0; t < kSmallPix && p0 + t < P; ++t) {
          V::store(lanes, acc[v][t]);
          for (int64_t i = 0, o = ob + v * V::width; i < V::width && o + i < M; ++i) y[(o + i) * P + p0 + t] = lanes[i];
        }
    }
  }
}

// A per-thread scratch of at least `floats` floats on a 64-byte boundary (its loads stay within
// cache lines), kept and grown across calls; its contents do not survive the next call.
struct ThreadBuffer {
  float* data = nullptr;
  int64_t capacity = 0;
  ~ThreadBuffer() { delete[] data; }
};
inline float* thread_buffer(int64_t floats) {
  thread_local ThreadBuffer buffer;
  if (floats + 16 > buffer.capacity) {
    delete[] buffer.data;
    buffer.data = new float[floats + 16];
    buffer.capacity = floats + 16;
  }
  return buffer.data + (16 - reinterpret_cast<uintptr_t>(buffer.data) / sizeof(float) % 16) % 16;
}

// One vector of pixels for conv3x3_backward_weight: acc[r][kj] += dy_r · the input at tap kj,
// dy_r the r-th vector at g (kWeightOut vectors packed one after another).
template <typename V>
inline void weight_taps(typename V::reg (&acc)[kWeightOut][3], const float* g, const float* xs,
                        const int64_t (&tap)[3]) {
  const typename V::reg x0 = V::load(xs + tap[0]), x1 = V::load(xs + tap[1]), x2 = V::load(xs + tap[2]);
#pragma GCC unroll 8
  for (int r = 0; r < kWeightOut; ++r) {
    const auto gv = in_register<V>(V::load(g + r * V::width));
    acc[r][0] = V::fma(gv, x0, acc[r][0]);
    acc[r][1] = V::fma(gv, x1, acc[r][1]);
    acc[r][2] = V::fma(gv, x2, acc[r][2]);
  }
}

// dw (M, C, 9) += Σ over samples and pixels of dy ⊗ the taps of xp. A register tile holds kOut
// output channels × the three kj of one (c, ki); the horizontal sums run once per tile and call.
// Each block of kOut dy channels is first packed vector by vector, [sample][vector][channel]
// (tail lanes and channels past M zero): one pointer then walks all kOut loads, where kOut
// channel pointers would spill the tile's registers.
template <typename V>
void conv3x3_backward_weight(const float* dy, const float* xp, const Conv3x3Input& in, int64_t H, int64_t W,
                             int64_t M, float* dw, int64_t count, int64_t x_step, int64_t dy_step) {
  const int64_t C = in.C, HW = H * W, per_row = (W + V::width - 1) / V::width, vectors = H * per_row;
  constexpr int64_t kPacked = kWeightOut * V::width;
  float* const packed = thread_buffer(count * vectors * kPacked);
  for (int64_t ob = 0; ob < M; ob += kWeightOut) {
    const int64_t rows = min_i64(kWeightOut, M - ob);
    float* q = packed;
    for (int64_t p = 0; p < count; ++p)
      for (int64_t oh = 0; oh < H; ++oh)
        for (int64_t ow = 0; ow < W; ow += V::width, q += kPacked)
          for (int64_t r = 0; r < kWeightOut; ++r) {
            const int lanes = r < rows ? static_cast<int>(min_i64(V::width, W - ow)) : 0;
            V::store(q + r * V::width, V::load_tail(dy + p * dy_step + (ob + r) * HW + oh * W + ow, lanes));
          }
    for (int64_t c = 0; c < C; ++c)
      for (int ki = 0; ki < 3; ++ki) {
        const int64_t tap[3] = {in.tap[ki * 3], in.tap[ki * 3 + 1], in.tap[ki * 3 + 2]};
        typename V::reg acc[kWeightOut][3];
#pragma GCC unroll 8
        for (auto& row : acc)
#pragma GCC unroll 3
          for (auto& a : row) a = V::zero();
        const float* g = packed;
        for (int64_t p = 0; p < count; ++p) {
          const float* xs = xp + p * x_step + c * in.plane;
          // One flat loop over the sample's vectors (a loop per row would reload acc each row).
          for (int64_t v = 0, column = 0; v < vectors; ++v, g += kPacked) {
            weight_taps<V>(acc, g, xs, tap);
            xs += V::width;
            if (++column == per_row) {
              column = 0;
              xs += in.row - per_row * V::width;
            }
          }
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int kj = 0; kj < 3; ++kj) dw[((ob + r) * C + c) * 9 + ki * 3 + kj] += V::hsum(acc[r][kj]);
      }
  }
}

// The weight gradient of small maps (the flat layout: outputs under 16 wide), whose few pixels
// per sample would leave the tiles above a horizontal sum every few vectors. The vectors run
// across output channels instead, as in conv3x3_small: a register tile holds kSmallOut vectors of
// output channels × the 9 taps of one input channel and reduces over every pixel of every sample
// in lanes, loading dy (transposed first: [sample][pixel][channel]) once for 9 FMAs and
// broadcasting each input value once for kSmallOut. No horizontal sums.
#ifdef __AVX512F__
constexpr int kSmallOut = 2;
#else
constexpr int kSmallOut = 1;
#endif

template <typename V>
void conv3x3_backward_weight_small(const float* dy, const float* xp, const Conv3x3Input& in, int64_t H, int64_t W,
                                   int64_t M, float* dw, int64_t count, int64_t x_step, int64_t dy_step) {
  constexpr int64_t block = kSmallOut * V::width;
  const int64_t C = in.C, P = H * W, M_padded = (M + block - 1) / block * block;
  float* const dy_t = thread_buffer(count * P * M_padded);
  for (int64_t s = 0; s < count; ++s)
    for (int64_t p = 0; p < P; ++p) {
      float* row = dy_t + (s * P + p) * M_padded;
      for (int64_t o = 0; o < M; ++o) row[o] = dy[s * dy_step + o * P + p];
      for (int64_t o = M; o < M_padded; ++o) row[o] = 0.f;  // channels past M
    }
  for (int64_t ob = 0; ob < M; ob += block)
    for (int64_t c = 0; c < C; ++c) {
      typename V::reg acc[kSmallOut][9];
      for (auto& row : acc)
#pragma GCC unroll 9
        for (auto& a : row) a = V::zero();
      for (int64_t s = 0; s < count; ++s) {
        const float* xc = xp + s * x_step + c * in.plane;
        const float* g = dy_t + s * P * M_padded + ob;
        for (int64_t p = 0; p < P; ++p, g += M_padded) {
          typename V::reg gv[kSmallOut];
#pragma GCC unroll 4
          for (int v = 0; v < kSmallOut; ++v) gv[v] = in_register<V>(V::load(g + v * V::width));
#pragma GCC unroll 9
          for (int k = 0; k < 9; ++k) {
            const auto xv = V::set1(xc[in.tap[k] + p]);
#pragma GCC unroll 4
            for (int v = 0; v < kSmallOut; ++v) acc[v][k] = V::fma(gv[v], xv, acc[v][k]);
          }
        }
      }
      float lanes[V::width];
      for (int v = 0; v < kSmallOut; ++v)
        for (int k = 0; k < 9; ++k) {
          V::store(lanes, acc[v][k]);
          for (int64_t i = 0, o = ob + v * V::width; i < V::width && o + i < M; ++i)
            dw[((o + i) * C + c) * 9 + k] += lanes[i];
        }
    }
}

// The stride-2 planes of one channel for the direct 3×3 kernels (kernels.hpp): input row ih
// fills row (ih + 1)/2 of copies 2·kj + (ih + 1) % 2 with x_ih[2·ow + kj − 1] (0 past the row's
// ends), ow < ⌈W/2⌉; the caller zeroes the rest of the plane.
template <typename V>
void stride2_planes(const float* x, int64_t H, int64_t W, float* p, int64_t copy) {
  const int64_t W_out = (W + 1) / 2;
  // even[i] = r[at + 2i], odd[i] = r[at + 2i + 1], 0 past the row's end
  auto columns = [&](const float* r, int64_t at, typename V::reg& even, typename V::reg& odd) {
    V::deinterleave(load_n<V>(r + at, lanes_within<V>(at, W)),
                    load_n<V>(r + at + V::width, lanes_within<V>(at + V::width, W)), even, odd);
  };
  for (int64_t ih = 0; ih < H; ++ih) {
    const float* r = x + ih * W;
    float* row[3];
    for (int kj = 0; kj < 3; ++kj) row[kj] = p + (2 * kj + (ih + 1) % 2) * copy + (ih + 1) / 2 * W_out;
    for (int64_t ow = 0; ow < W_out; ow += V::width) {
      typename V::reg even, odd, before, unused;
      columns(r, 2 * ow, even, odd);
      if (ow == 0)
        before = V::shift_up(odd, 0.f);  // x[2·ow − 1]: the left border, then the odd columns
      else
        columns(r, 2 * ow - 1, before, unused);
      const int lanes = lanes_within<V>(ow, W_out);
      store_n<V>(row[0] + ow, before, lanes);
      store_n<V>(row[1] + ow, even, lanes);
      store_n<V>(row[2] + ow, odd, lanes);
    }
  }
}

template <typename V>
void merge_even_odd(const float* even, const float* odd, int64_t n, float* x) {
  const int64_t n_even = (n + 1) / 2, n_odd = n / 2;
  for (int64_t i = 0; i < n_even; i += V::width) {
    typename V::reg a, b;
    V::interleave(load_n<V>(even + i, lanes_within<V>(i, n_even)), load_n<V>(odd + i, lanes_within<V>(i, n_odd)), a, b);
    store_n<V>(x + 2 * i, a, lanes_within<V>(2 * i, n));
    store_n<V>(x + 2 * i + V::width, b, lanes_within<V>(2 * i + V::width, n));
  }
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS
