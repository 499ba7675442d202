// The convolution engine behind conv2d. The general path is im2col + sgemm (darknet's
// forward_convolutional_layer), per group and per block of B samples laid side by side (B = 1 for
// maps of 512 pixels or more):
//   col (C_in/g·kH·kW, B·H_out·W_out) = im2col(x),  y_g (C_out/g, B·H_out·W_out) = W_g · col
// and the backward reuses the same column layout: dcol = W_gᵀ · dy_g then col2im; dW_g += dy_g · colᵀ.
// Threads take contiguous ranges of samples, each with its own buffers and single-threaded
// sgemms; 1×1 stride-1 convolutions of one sample skip im2col. Depthwise 3×3 convolutions
// (padding 1, stride 1 or 2) use a direct SIMD kernel instead, and so do dense 3×3 ones with
// padding 1, stride 1 or 2; conv_path names the choice for each pass.
#include "core/kernels/conv.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/kernels/conv_internal.hpp"
#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"

namespace shears {

namespace {

bool is_pointwise(const ConvGeometry& g) {
  return g.kH == 1 && g.kW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// Depthwise 3×3 with padding 1, stride 1 or 2: the direct SIMD kernel (MobileNetV1's layers).
bool is_depthwise3x3(const ConvGeometry& g) {
  return g.groups == g.C_in && g.C_out == g.C_in && g.kH == 3 && g.kW == 3 && g.pad_h == 1 && g.pad_w == 1 &&
         g.dil_h == 1 && g.dil_w == 1 && g.stride_h == g.stride_w && (g.stride_h == 1 || g.stride_h == 2);
}

// For kernel column kj: the input column offset (iw = ow·s + offset) and the output columns
// [ow0, ow1) whose input column lies inside the image.
struct ValidColumns {
  int64_t offset, ow0, ow1;
};
ValidColumns valid_columns(const ConvGeometry& g, int64_t kj) {
  int64_t offset = kj * g.dil_w - g.pad_w;
  int64_t ow0 = std::clamp<int64_t>(offset >= 0 ? 0 : (-offset + g.stride_w - 1) / g.stride_w, 0, g.W_out);
  int64_t ow1 = std::clamp<int64_t>(g.W - offset > 0 ? (g.W - offset + g.stride_w - 1) / g.stride_w : 0, ow0, g.W_out);
  return {offset, ow0, ow1};
}

// Rows im2col [c0, c1) (channel c of this group covers rows c·kH·kW …) of one sample's group,
// written with row stride `ld` (several samples side by side share one column matrix).
// Each output row splits into a zero left margin, a valid middle and a zero right margin, so
// long stride-1 middles are plain copies; short rows (VGG's and ResNet-18's 4×4 and 2×2 maps)
// are one select loop, where three library calls per row of four cost more than the copy.
void im2col_channels(const ConvGeometry& g, const float* x, float* col, int64_t ld, int64_t c0, int64_t c1) {
  constexpr int64_t kLongRow = 32;
  for (int64_t kj = 0; kj < g.kW; ++kj) {
    auto [offset, ow0, ow1] = valid_columns(g, kj);
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t ki = 0; ki < g.kH; ++ki) {
        float* row = col + ((c * g.kH + ki) * g.kW + kj) * ld;
        const float* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.H_out; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
          const bool inside = ih >= 0 && ih < g.H;
          const int64_t begin = inside ? ow0 : 0, end = inside ? ow1 : 0;
          const float* in = inside ? plane + ih * g.W + offset : plane;
          float* out = row + oh * g.W_out;
          if (g.stride_w == 1 && end - begin >= kLongRow) {
            std::fill(out, out + begin, 0.f);
            std::memcpy(out + begin, in + begin, sizeof(float) * (end - begin));
            std::fill(out + end, out + g.W_out, 0.f);
          } else {
            for (int64_t ow = 0; ow < g.W_out; ++ow) out[ow] = ow >= begin && ow < end ? in[ow * g.stride_w] : 0.f;
          }
        }
      }
  }
}

// The adjoint of im2col for channels [c0, c1): accumulates col back into x (C, H, W), with the
// same valid-column split as im2col.
void col2im_channels(const ConvGeometry& g, const float* col, int64_t ld, float* x, int64_t c0, int64_t c1) {
  for (int64_t kj = 0; kj < g.kW; ++kj) {
    auto [offset, ow0, ow1] = valid_columns(g, kj);
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t ki = 0; ki < g.kH; ++ki) {
        const float* row = col + ((c * g.kH + ki) * g.kW + kj) * ld;
        float* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.H_out; ++oh) {
          int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          float* out = plane + ih * g.W + offset;
          const float* in = row + oh * g.W_out;
          if (g.stride_w == 1) {
            for (int64_t ow = ow0; ow < ow1; ++ow) out[ow] += in[ow];
          } else {
            for (int64_t ow = ow0; ow < ow1; ++ow) out[ow * g.stride_w] += in[ow];
          }
        }
      }
  }
}

void depthwise_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const kernels::Table& k = kernels::kernels();
  int64_t HW = g.H * g.W, HWo = g.H_out * g.W_out;
  parallel_for(g.N * g.C_in, std::max<int64_t>(1, 2048 / HWo), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t c = p % g.C_in;
      k.depthwise3x3(x + p * HW, g.H, g.W, w + c * 9, y + p * HWo, g.stride_h);
      if (bias)
        for (int64_t i = 0; i < HWo; ++i) y[p * HWo + i] += bias[c];
    }
  });
}

// 3×3 convolutions with padding 1, stride 1 or 2 run a direct kernel: kernels::conv3x3 (vectors
// along output pixels) when the output is at least 8 wide, kernels::conv3x3_small (vectors across
// output channels) when narrower. No column matrix, no packing by the BLAS, no col2im. At stride
// 1, dx is the same convolution of dy with the kernel transposed and rotated by 180°; at stride 2,
// four smaller ones, one per output parity (direct3x3_stride2_input_gradient; im2col + sgemm when
// dy is under 8 wide). The weight gradient loses to sgemm beyond 64×128 channels, and on outputs
// under 8 wide (`make bench`: README).
bool is_direct3x3(const ConvGeometry& g) {
  return g.groups == 1 && g.kH == 3 && g.kW == 3 && g.stride_h == g.stride_w && g.stride_h <= 2 && g.pad_h == 1 &&
         g.pad_w == 1 && g.dil_h == 1 && g.dil_w == 1;
}
bool is_direct3x3_weight(const ConvGeometry& g) {
  return is_direct3x3(g) && g.W_out >= 8 && g.C_in * g.C_out <= 64 * 128;
}

// The input planes kernels::conv3x3 reads, for an (H, W) input with a border of zeros, in one of
// two layouts (kernels::Conv3x3Input: output pixel (oh, ow) reads tap t at oh·row + ow + tap[t]).
// Rows, at stride 1 for outputs 16 or more wide: the bordered input as is.
// Flat, otherwise: column-shifted copies of the bordered input, rows W_out wide, so that each tap
// runs contiguously over the whole flattened output (the kernel sees one row of H_out·W_out
// pixels): a vector covers two 8-wide rows, and at stride 2 each tap of consecutive outputs is
// contiguous. Stride 1: three copies (kj), H + 2 rows each, tap (ki, kj) at copy kj + ki·W.
// Stride 2: six (kj × even/odd bordered rows), H_out + 1 rows each; ki = 0, 1 read the even and
// odd rows at row oh, ki = 2 the even ones at oh + 1. Copies cost fills: wide outputs use rows.
struct DirectInput {
  int64_t H, W, stride, H_out, W_out;
  bool flat;
  int64_t copy = 0;  // flat: floats per column-shifted copy
  kernels::Conv3x3Input in{};

  DirectInput(int64_t C, int64_t H_, int64_t W_, int64_t stride_)
      : H(H_),
        W(W_),
        stride(stride_),
        H_out((H - 1) / stride + 1),
        W_out((W - 1) / stride + 1),
        flat(stride == 2 || W_out < 16) {
    const int64_t Hp = H + 2, Wp = W + 2;
    in.C = C;
    if (flat) {
      copy = ((stride == 1 ? Hp : H_out + 1) * W_out + 15) / 16 * 16;
      in.row = 0;
      in.plane = (stride == 1 ? 3 : 6) * copy + 16;  // slack: reads run up to a vector past the last tap
    } else {
      in.row = Wp;
      in.plane = (Hp * Wp + 32 + 15) / 16 * 16;
    }
    for (int ki = 0; ki < 3; ++ki)
      for (int kj = 0; kj < 3; ++kj) {
        const int64_t flat_tap = stride == 1 ? kj * copy + ki * W_out : (2 * kj + (ki == 1)) * copy + (ki == 2) * W_out;
        in.tap[ki * 3 + kj] = flat ? flat_tap : ki * Wp + kj;
      }
  }
  // The output as the kernels see it: flat, one row of all pixels.
  int64_t rows() const { return flat ? 1 : H_out; }
  int64_t columns() const { return flat ? H_out * W_out : W_out; }

  // Fills the planes of C channels from x (C, H, W).
  void fill(const float* x, float* xp) const {
    for (int64_t c = 0; c < in.C; ++c) {
      const float* src = x + c * H * W;
      float* p = xp + c * in.plane;
      if (!flat) {
        std::fill(p, p + W + 2, 0.f);
        for (int64_t ih = 0; ih < H; ++ih) {
          float* row = p + (ih + 1) * (W + 2);
          row[0] = row[W + 1] = 0.f;
          std::memcpy(row + 1, src + ih * W, sizeof(float) * W);
        }
        std::fill(p + (H + 1) * (W + 2), p + in.plane, 0.f);
        continue;
      }
      std::fill(p, p + in.plane, 0.f);
      if (stride == 2) {
        kernels::kernels().stride2_planes(src, H, W, p, copy);
        continue;
      }
      // copy kj, row ih + 1: [0, x_ih[0 .. W−2]], x_ih, [x_ih[1 .. W−1], 0]
      float *left = p + W, *middle = p + copy + W, *right = p + 2 * copy + W;
      std::memcpy(middle, src, sizeof(float) * H * W);
      std::memcpy(left + 1, src, sizeof(float) * (H * W - 1));
      std::memcpy(right, src + 1, sizeof(float) * (H * W - 1));
      for (int64_t ih = 0; ih < H; ++ih) left[ih * W] = right[ih * W + W - 1] = 0.f;
    }
  }
};

// w (M, C, 3, 3) packed [⌈M/b⌉][C][9][b] for the direct kernels (b = 4 for kernels::conv3x3); for
// the input gradient the roles swap: w'[c][o] = w[o][c] rotated by 180°, packed [⌈C/b⌉][M][9][b].
std::vector<float> pack3x3(const float* w, int64_t M, int64_t C, bool for_input_gradient, int64_t b) {
  const int64_t out = for_input_gradient ? C : M, in = for_input_gradient ? M : C;
  std::vector<float> packed((out + b - 1) / b * b * in * 9, 0.f);
  for (int64_t o = 0; o < M; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t tap = 0; tap < 9; ++tap) {
        const int64_t po = for_input_gradient ? c : o, pi = for_input_gradient ? o : c;
        packed[((po / b * in + pi) * 9 + tap) * b + po % b] = w[(o * C + c) * 9 + (for_input_gradient ? 8 - tap : tap)];
      }
  return packed;
}

// Samples per sgemm: small feature maps (ResNet's 8×8, VGG's 2×2) are laid side by side so each
// sgemm has at least ~512 columns, with the column buffer capped at 8 MiB.
int64_t samples_per_block(const ConvGeometry& g) {
  int64_t HWo = g.H_out * g.W_out, K = g.cin_g() * g.kH * g.kW;
  int64_t want = (512 + HWo - 1) / HWo, cap = std::max<int64_t>(1, (int64_t{2} << 20) / (K * HWo));
  return std::max<int64_t>(1, std::min(want, cap));
}

// A block of nb samples starting at n0, for group grp, seen as matrices with nb·HWo columns:
//   columns (K, nb·HWo) of x; rows (C_rows, nb·HWo) of a (N, C, HWo) tensor, packed or unpacked.
struct SampleBlock {
  const ConvGeometry& g;
  int64_t n0, nb, grp;
  int64_t HWo() const { return g.H_out * g.W_out; }
  int64_t ld() const { return nb * HWo(); }
  void fill_columns(const float* x, float* col) const {
    for (int64_t b = 0; b < nb; ++b)
      im2col_channels(g, x + ((n0 + b) * g.C_in + grp * g.cin_g()) * g.H * g.W, col + b * HWo(), ld(), 0, g.cin_g());
  }
  void fold_columns(const float* col, float* dx) const {
    for (int64_t b = 0; b < nb; ++b) {
      float* dxg = dx + ((n0 + b) * g.C_in + grp * g.cin_g()) * g.H * g.W;
      std::memset(dxg, 0, sizeof(float) * g.cin_g() * g.H * g.W);
      col2im_channels(g, col + b * HWo(), ld(), dxg, 0, g.cin_g());
    }
  }
  // rows r0.. of each sample's (C, HWo) block of t <-> packed (rows, nb·HWo).
  void pack(const float* t, int64_t C, int64_t r0, int64_t rows, float* packed) const {
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(packed + r * ld() + b * HWo(), t + ((n0 + b) * C + r0 + r) * HWo(), sizeof(float) * HWo());
  }
  void unpack(const float* packed, int64_t C, int64_t r0, int64_t rows, float* t) const {
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(t + ((n0 + b) * C + r0 + r) * HWo(), packed + r * ld() + b * HWo(), sizeof(float) * HWo());
  }
};

// Runs body(block) for every block of samples, threads taking contiguous sample ranges.
template <typename Body>
void for_each_block(const ConvGeometry& g, int64_t chunks, Body body) {
  int64_t B = samples_per_block(g);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t n = g.N * c / chunks, end = g.N * (c + 1) / chunks; n < end; n += B)
        for (int64_t grp = 0; grp < g.groups; ++grp) body(c, SampleBlock{g, n, std::min(B, end - n), grp});
  });
}

// y = conv(x, w) by the direct kernel, or by the kernel for dx from dy (for_input_gradient).
void direct3x3(const ConvGeometry& g, const float* x, const float* w, float* y, bool for_input_gradient) {
  const int64_t in = for_input_gradient ? g.C_out : g.C_in, out = for_input_gradient ? g.C_in : g.C_out;
  const int64_t H = for_input_gradient ? g.H_out : g.H, W = for_input_gradient ? g.W_out : g.W;
  const DirectInput planes(in, H, W, for_input_gradient ? 1 : g.stride_h);
  const kernels::Table& k = kernels::kernels();
  const bool small = planes.W_out < 8;
  const auto kernel = small ? k.conv3x3_small : k.conv3x3;
  const int64_t block = small ? k.conv3x3_small_block : 4;
  const std::vector<float> packed = pack3x3(w, g.C_out, g.C_in, for_input_gradient, block);
  parallel_for(g.N, 1, [&](int64_t n0, int64_t n1) {
    float* xp = scratch(0, in * planes.in.plane);
    for (int64_t n = n0; n < n1; ++n) {
      planes.fill(x + n * in * H * W, xp);
      kernel(xp, planes.in, planes.rows(), planes.columns(), packed.data(), out,
             y + n * out * planes.H_out * planes.W_out);
    }
  });
}

// dx of a stride-2 3×3 convolution (padding 1) as four stride-1 convolutions of dy, one per
// parity (pa, pb) of (ih, iw) = (2a + pa, 2b + pb), each over the H_out × W_out grid of (a, b):
// rows ih = 2a take kernel row 1 at dy row a; ih = 2a + 1 take row 0 at a + 1 and row 2 at a
// (columns alike). dy is laid out flat (DirectInput) with a zero row below and a zero column
// to the right, in two copies (dy[·][b] and dy[·][b + 1]); the four results interleave into dx.
struct Stride2Phase {
  int taps = 0;
  int kernel_tap[4];    // 3·ki + kj
  int64_t dy_shift[4];  // (da, db) as da·W_out + db·copy
};

void direct3x3_stride2_input_gradient(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t M = g.C_out, C = g.C_in, H_out = g.H_out, W_out = g.W_out, P = H_out * W_out;
  const int64_t copy = ((H_out + 1) * W_out + 15) / 16 * 16;
  struct Tap {
    int k;
    int64_t shift;
  };
  const std::vector<Tap> by_parity[2] = {{{1, 0}}, {{0, 1}, {2, 0}}};  // (kernel index, dy offset) per parity
  Stride2Phase phases[4];
  std::vector<float> packed[4];
  for (int pa = 0; pa < 2; ++pa)
    for (int pb = 0; pb < 2; ++pb) {
      Stride2Phase& ph = phases[pa * 2 + pb];
      for (const Tap& row : by_parity[pa])
        for (const Tap& column : by_parity[pb]) {
          ph.kernel_tap[ph.taps] = row.k * 3 + column.k;
          ph.dy_shift[ph.taps++] = row.shift * W_out + column.shift * copy;
        }
      // w'[c][o][t] = w[o][c][kernel_tap[t]], packed [⌈C/4⌉][M][taps][4]
      std::vector<float>& pk = packed[pa * 2 + pb];
      pk.assign((C + 3) / 4 * 4 * M * ph.taps, 0.f);
      for (int64_t o = 0; o < M; ++o)
        for (int64_t c = 0; c < C; ++c)
          for (int t = 0; t < ph.taps; ++t)
            pk[((c / 4 * M + o) * ph.taps + t) * 4 + c % 4] = w[(o * C + c) * 9 + ph.kernel_tap[t]];
    }
  kernels::Conv3x3Input in{};
  in.C = M;
  in.plane = 2 * copy + 16;  // slack: reads run up to a vector past the last tap
  const kernels::Table& k = kernels::kernels();
  parallel_for(g.N, 1, [&](int64_t n0, int64_t n1) {
    float* planes = scratch(0, M * in.plane);
    float* out = scratch(1, 4 * C * P);
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t o = 0; o < M; ++o) {
        const float* src = dy + (n * M + o) * P;
        float* p = planes + o * in.plane;
        std::fill(p, p + in.plane, 0.f);
        std::memcpy(p, src, sizeof(float) * P);
        std::memcpy(p + copy, src + 1, sizeof(float) * (P - 1));
        for (int64_t a = 0; a < H_out; ++a) p[copy + a * W_out + W_out - 1] = 0.f;
      }
      for (int ph = 0; ph < 4; ++ph) {
        kernels::Conv3x3Input phase_in = in;
        phase_in.taps = phases[ph].taps;
        std::copy(phases[ph].dy_shift, phases[ph].dy_shift + phases[ph].taps, phase_in.tap);
        k.conv3x3(planes, phase_in, 1, P, packed[ph].data(), C, out + ph * C * P);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t ih = 0; ih < g.H; ++ih) {
          const int64_t pa = ih % 2, a = ih / 2;
          const float* even = out + ((pa * 2) * C + c) * P + a * W_out;
          const float* odd = out + ((pa * 2 + 1) * C + c) * P + a * W_out;
          k.merge_even_odd(even, odd, g.W, dx + ((n * C + c) * g.H + ih) * g.W);
        }
    }
  });
}

void gemm_forward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  int64_t K = g.cin_g() * g.kH * g.kW, M = g.cout_g();
  for_each_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const SampleBlock& blk) {
    bool direct = is_pointwise(g) && blk.nb == 1;  // x is already the column matrix
    const float* src = x + (blk.n0 * g.C_in + blk.grp * g.cin_g()) * blk.HWo();
    if (!direct) {
      float* col = scratch(0, K * blk.ld());
      blk.fill_columns(x, col);
      src = col;
    }
    float* dst = blk.nb == 1 ? y + (blk.n0 * g.C_out + blk.grp * M) * blk.HWo() : scratch(1, M * blk.ld());
    blas::sgemm(false, false, M, blk.ld(), K, 1.f, w + blk.grp * M * K, K, src, blk.ld(), 0.f, dst, blk.ld());
    if (blk.nb > 1) blk.unpack(dst, g.C_out, blk.grp * M, M, y);
  });
}

void depthwise_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  const kernels::Table& k = kernels::kernels();
  int64_t HW = g.H * g.W, HWo = g.H_out * g.W_out;
  parallel_for(g.N * g.C_in, std::max<int64_t>(1, 2048 / HWo), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      k.depthwise3x3_backward_input(dy + p * HWo, g.H, g.W, w + (p % g.C_in) * 9, dx + p * HW, g.stride_h);
  });
}

void gemm_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  int64_t K = g.cin_g() * g.kH * g.kW, M = g.cout_g();
  for_each_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const SampleBlock& blk) {
    const float* dyg = dy + (blk.n0 * g.C_out + blk.grp * M) * blk.HWo();
    if (blk.nb > 1) {
      float* packed = scratch(1, M * blk.ld());
      blk.pack(dy, g.C_out, blk.grp * M, M, packed);
      dyg = packed;
    }
    // dcol (K, nb·HWo) = W_gᵀ · dy_g, folded back by col2im (pointwise, one sample: dcol is dx).
    bool direct = is_pointwise(g) && blk.nb == 1;
    float* dcol = direct ? dx + (blk.n0 * g.C_in + blk.grp * g.cin_g()) * blk.HWo() : scratch(0, K * blk.ld());
    blas::sgemm(true, false, K, blk.ld(), M, 1.f, w + blk.grp * M * K, K, dyg, blk.ld(), 0.f, dcol, blk.ld());
    if (!direct) blk.fold_columns(dcol, dx);
  });
}

void depthwise_backward_weight(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  const kernels::Table& k = kernels::kernels();
  const int64_t HW = g.H * g.W, HWo = g.H_out * g.W_out;
  std::memset(dw, 0, sizeof(float) * g.C_out * g.cin_g() * 9);
  parallel_for(g.C_in, 1, [&](int64_t c0, int64_t c1) {  // one channel's taps accumulate over the batch
    for (int64_t c = c0; c < c1; ++c)
      k.depthwise3x3_backward_weight(dy + c * HWo, x + c * HW, g.H, g.W, dw + c * 9, g.stride_h, g.N, g.C_in * HW,
                                     g.C_in * HWo);
  });
}

// dW of a direct 3×3 into `partial` (one buffer of `size` per chunk of samples).
void direct3x3_backward_weight(const ConvGeometry& g, const float* dy, const float* x, int64_t chunks, int64_t size,
                               float* partial) {
  const int64_t HW = g.H * g.W, HWo = g.H_out * g.W_out;
  const DirectInput planes(g.C_in, g.H, g.W, g.stride_h);
  const kernels::Table& k = kernels::kernels();
  // Samples per kernel call: a block's input planes and dy stay in L2 (about 512 KiB), and the
  // kernel's packed dy of 8 channels in L1 (32 KiB), read again for every input channel and row.
  const int64_t x_step = g.C_in * planes.in.plane, dy_step = g.C_out * HWo;
  const int64_t B = std::max<int64_t>(1, std::min((int64_t{128} << 10) / (x_step + dy_step), 8192 / (8 * HWo)));
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t n = g.N * c / chunks, end = g.N * (c + 1) / chunks; n < end; n += B) {
        const int64_t nb = std::min(B, end - n);
        float* xp = scratch(0, nb * x_step);
        for (int64_t b = 0; b < nb; ++b) planes.fill(x + (n + b) * g.C_in * HW, xp + b * x_step);
        const auto kernel = planes.W_out < 16 ? k.conv3x3_backward_weight_small : k.conv3x3_backward_weight;
        kernel(dy + n * dy_step, xp, planes.in, planes.rows(), planes.columns(), g.C_out, partial + c * size, nb,
               x_step, dy_step);
      }
  });
}

// dW by sgemm into `partial` (one buffer of `size` per chunk of samples).
void gemm_backward_weight(const ConvGeometry& g, const float* dy, const float* x, int64_t chunks, int64_t size,
                          float* partial) {
  const int64_t K = g.cin_g() * g.kH * g.kW, HWo = g.H_out * g.W_out, M = g.cout_g(), HW = g.H * g.W;
  for_each_block(g, chunks, [&](int64_t c, const SampleBlock& blk) {
    const float* src = x + (blk.n0 * g.C_in + blk.grp * g.cin_g()) * HW;  // pointwise, one sample
    if (!(is_pointwise(g) && blk.nb == 1)) {
      float* col = scratch(0, K * blk.ld());
      blk.fill_columns(x, col);
      src = col;
    }
    const float* dyg = dy + (blk.n0 * g.C_out + blk.grp * M) * HWo;
    if (blk.nb > 1) {
      float* packed = scratch(1, M * blk.ld());
      blk.pack(dy, g.C_out, blk.grp * M, M, packed);
      dyg = packed;
    }
    // dW_g (M, K) += dy_g · colᵀ
    blas::sgemm(false, true, M, K, blk.ld(), 1.f, dyg, blk.ld(), src, blk.ld(), 1.f,
                partial + c * size + blk.grp * M * K, K);
  });
}

constexpr ConvPath kPaths[] = {ConvPath::gemm, ConvPath::depthwise3x3, ConvPath::direct3x3, ConvPath::direct3x3_parity};

std::optional<ConvPath> path_from_environment() {
  const char* forced = std::getenv("SHEARS_CONV_PATH");
  if (!forced || !*forced || std::string(forced) == "auto") return std::nullopt;
  for (ConvPath path : kPaths)
    if (conv_path_name(path) == std::string(forced)) return path;
  throw Error(std::string("SHEARS_CONV_PATH: expected auto, gemm, depthwise3x3, direct3x3 or direct3x3-parity, got '") +
              forced + "'");
}

std::optional<ConvPath>& forced_slot() {
  static std::optional<ConvPath> forced = path_from_environment();
  return forced;
}

// The rule, measured per pass (the comments above each predicate).
ConvPath chosen_path(const ConvGeometry& g, ConvPass pass) {
  if (is_depthwise3x3(g)) return ConvPath::depthwise3x3;
  switch (pass) {
    case ConvPass::forward:
      return is_direct3x3(g) ? ConvPath::direct3x3 : ConvPath::gemm;
    case ConvPass::input_gradient:
      if (is_direct3x3(g) && g.stride_h == 1) return ConvPath::direct3x3;
      return is_direct3x3(g) && g.W_out >= 8 ? ConvPath::direct3x3_parity : ConvPath::gemm;
    case ConvPass::weight_gradient:
      return is_direct3x3_weight(g) ? ConvPath::direct3x3 : ConvPath::gemm;
  }
  return ConvPath::gemm;
}

}  // namespace

bool conv_path_supports(ConvPath path, const ConvGeometry& g, ConvPass pass) {
  switch (path) {
    case ConvPath::gemm:
      return true;
    case ConvPath::depthwise3x3:
      return is_depthwise3x3(g);
    case ConvPath::direct3x3:
      if (pass == ConvPass::weight_gradient) return is_direct3x3_weight(g);
      return is_direct3x3(g) && (pass == ConvPass::forward || g.stride_h == 1);
    case ConvPath::direct3x3_parity:
      return pass == ConvPass::input_gradient && is_direct3x3(g) && g.stride_h == 2 && g.W_out >= 8;
  }
  return false;
}

ConvPath conv_path(const ConvGeometry& g, ConvPass pass) {
  const std::optional<ConvPath> forced = forced_slot();
  return forced && conv_path_supports(*forced, g, pass) ? *forced : chosen_path(g, pass);
}

void force_conv_path(std::optional<ConvPath> path) { forced_slot() = path; }

std::optional<ConvPath> forced_conv_path() { return forced_slot(); }

const char* conv_path_name(ConvPath path) {
  switch (path) {
    case ConvPath::gemm:
      return "gemm";
    case ConvPath::depthwise3x3:
      return "depthwise3x3";
    case ConvPath::direct3x3:
      return "direct3x3";
    case ConvPath::direct3x3_parity:
      return "direct3x3-parity";
  }
  return "?";
}

void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  switch (conv_path(g, ConvPass::forward)) {
    case ConvPath::depthwise3x3:
      return depthwise_forward(g, x, w, bias, y);  // adds the bias itself
    case ConvPath::direct3x3:
      direct3x3(g, x, w, y, false);
      break;
    default:
      gemm_forward(g, x, w, y);
      break;
  }
  if (bias) add_bias(g, bias, y);
}

void conv2d_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  switch (conv_path(g, ConvPass::input_gradient)) {
    case ConvPath::depthwise3x3:
      return depthwise_backward_input(g, dy, w, dx);
    case ConvPath::direct3x3:
      return direct3x3(g, dy, w, dx, true);
    case ConvPath::direct3x3_parity:
      return direct3x3_stride2_input_gradient(g, dy, w, dx);
    case ConvPath::gemm:
      return gemm_backward_input(g, dy, w, dx);
  }
}

void conv2d_backward_weight(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  const ConvPath path = conv_path(g, ConvPass::weight_gradient);
  if (path == ConvPath::depthwise3x3) return depthwise_backward_weight(g, dy, x, dw);
  // Each chunk of samples accumulates dW into its own buffer; the buffers are summed in chunk order
  // afterwards. The split depends only on N, never on the thread count (kSampleChunks).
  const int64_t chunks = std::min<int64_t>(kSampleChunks, g.N), size = g.C_out * g.cin_g() * g.kH * g.kW;
  std::vector<float> partial(chunks * size, 0.f);
  if (path == ConvPath::direct3x3)
    direct3x3_backward_weight(g, dy, x, chunks, size, partial.data());
  else
    gemm_backward_weight(g, dy, x, chunks, size, partial.data());
  sum_chunks(partial, chunks, size, dw);
}

namespace {

// A depthwise 3×3's dx and dw in one pass, plane after plane in memory order: each dy plane is
// read for dx and again, from L1, for its channel's dw (two passes stream dy from memory twice;
// these layers are bound by memory). Each chunk of samples sums dw into its own buffer, added up in
// chunk order afterwards, as in conv2d_backward_weight.
void depthwise_backward(const ConvGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw) {
  const kernels::Table& k = kernels::kernels();
  const int64_t C = g.C_in, HW = g.H * g.W, HWo = g.H_out * g.W_out, chunks = std::min<int64_t>(kSampleChunks, g.N);
  std::vector<float> partial(chunks * C * 9, 0.f);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk)
      for (int64_t n = g.N * chunk / chunks, end = g.N * (chunk + 1) / chunks; n < end; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t p = n * C + c;
          k.depthwise3x3_backward_input(dy + p * HWo, g.H, g.W, w + c * 9, dx + p * HW, g.stride_h);
          k.depthwise3x3_backward_weight(dy + p * HWo, x + p * HW, g.H, g.W, partial.data() + (chunk * C + c) * 9,
                                         g.stride_h, 1, 0, 0);
        }
  });
  sum_chunks(partial, chunks, C * 9, dw);
}

}  // namespace

void conv2d_backward(const ConvGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw) {
  if (dx && dw && conv_path(g, ConvPass::weight_gradient) == ConvPath::depthwise3x3)
    return depthwise_backward(g, dy, x, w, dx, dw);
  if (dx) conv2d_backward_input(g, dy, w, dx);
  if (dw) conv2d_backward_weight(g, dy, x, dw);
}

}  // namespace shears

namespace shears {

float* scratch(int slot, int64_t floats) {
  thread_local std::vector<float> buffers[2];
  if (static_cast<int64_t>(buffers[slot].size()) < floats) buffers[slot].resize(floats);
  return buffers[slot].data();
}

void sum_chunks(const std::vector<float>& partial, int64_t chunks, int64_t size, float* out) {
  std::memcpy(out, partial.data(), sizeof(float) * size);
  for (int64_t c = 1; c < chunks; ++c)
    for (int64_t i = 0; i < size; ++i) out[i] += partial[c * size + i];
}

void add_bias(const ConvGeometry& g, const float* bias, float* y) {
  const int64_t HWo = g.H_out * g.W_out;
  parallel_for(g.N * g.C_out, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < HWo; ++j) y[i * HWo + j] += bias[i % g.C_out];
  });
}

void sparse_rows(const kernels::CsrRows& w, int64_t rows, const float* x, int64_t ldx, int64_t P, float* y, int64_t ldy,
                 bool accumulate) {
  const kernels::Table& k = kernels::kernels();
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) { k.csr_times_dense(w, r0, r1, x, ldx, P, y, ldy, accumulate); });
}

void sparse_gemm_forward(const ConvGeometry& g, const kernels::CsrRows& w, const float* x, const float* bias,
                         float* y) {
  const int64_t K = g.C_in * g.kH * g.kW, M = g.C_out;
  for_each_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const SampleBlock& blk) {
    const bool direct = is_pointwise(g) && blk.nb == 1;  // x is already the column matrix
    const float* src = x + blk.n0 * g.C_in * blk.HWo();
    if (!direct) {
      float* col = scratch(0, K * blk.ld());
      blk.fill_columns(x, col);
      src = col;
    }
    float* dst = blk.nb == 1 ? y + blk.n0 * M * blk.HWo() : scratch(1, M * blk.ld());
    sparse_rows(w, M, src, blk.ld(), blk.ld(), dst, blk.ld(), false);
    if (blk.nb > 1) blk.unpack(dst, M, 0, M, y);
  });
  if (bias) add_bias(g, bias, y);
}

void sparse_gemm_backward_input(const ConvGeometry& g, const kernels::CsrRows& wt, const float* dy, float* dx) {
  const int64_t K = g.C_in * g.kH * g.kW, M = g.C_out;
  for_each_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const SampleBlock& blk) {
    const float* dyg = dy + blk.n0 * M * blk.HWo();
    if (blk.nb > 1) {
      float* packed = scratch(1, M * blk.ld());
      blk.pack(dy, M, 0, M, packed);
      dyg = packed;
    }
    const bool direct = is_pointwise(g) && blk.nb == 1;
    float* dcol = direct ? dx + blk.n0 * g.C_in * blk.HWo() : scratch(0, K * blk.ld());
    sparse_rows(wt, K, dyg, blk.ld(), blk.ld(), dcol, blk.ld(), false);
    if (!direct) blk.fold_columns(dcol, dx);
  });
}

// Each chunk of samples sums into its own dv, added in chunk order (as conv2d_backward_weight).
void sparse_gemm_backward_weight(const ConvGeometry& g, const kernels::CsrRows& w, int64_t nnz, const float* dy,
                                 const float* x, float* dv) {
  const kernels::Table& k = kernels::kernels();
  const int64_t K = g.C_in * g.kH * g.kW, M = g.C_out, chunks = std::min<int64_t>(kSampleChunks, g.N);
  std::vector<float> partial(chunks * nnz, 0.f);
  for_each_block(g, chunks, [&](int64_t c, const SampleBlock& blk) {
    const float* src = x + blk.n0 * g.C_in * blk.HWo();
    if (!(is_pointwise(g) && blk.nb == 1)) {
      float* col = scratch(0, K * blk.ld());
      blk.fill_columns(x, col);
      src = col;
    }
    const float* dyg = dy + blk.n0 * M * blk.HWo();
    if (blk.nb > 1) {
      float* packed = scratch(1, M * blk.ld());
      blk.pack(dy, M, 0, M, packed);
      dyg = packed;
    }
    float* out = partial.data() + c * nnz;
    parallel_for(M, 16, [&](int64_t r0, int64_t r1) {
      k.csr_sampled_dots(w, r0, r1, dyg, blk.ld(), src, blk.ld(), blk.ld(), out);
    });
  });
  sum_chunks(partial, chunks, nnz, dv);
}

}  // namespace shears
