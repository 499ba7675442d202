// Sparse convolutions (groups 1): the flat path for stride-1 "same" convolutions (k odd, padding
// (k − 1)/2: ResNet's and VGG's 3×3, MobileNet's 1×1) and the stride-2 3×3 and 1×1 ones of
// ResNet's downsampling, and sparse_gemm_* (conv.cpp) otherwise.
//
// The flat layout holds a block of nb samples, each channel's plane bordered by the padding's
// zeros, channel-major: channel c of sample b at c·S + b·plane, S = nb·plane. Neighbours share
// their borders (a row's right border is the next row's left one, a sample's bottom border the
// next sample's top one): rows are W + p wide and planes H + p rows, so a 4×4 map costs 25
// positions instead of 36.
// Pixel q = b·plane + oh·row + ow of the flattened grid reads entry (c, ki, kj) of the weight at
// c·S + ki·row + kj + q, so each kept entry multiplies one contiguous run and the CSR kernels run
// with these offsets as column indices (ldx = 1): no im2col, no column matrix. The grid's border
// positions are computed too, and dropped.
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "core/kernels/conv_internal.hpp"
#include "core/parallel.hpp"

namespace shears {

namespace {

// Stride 1 with "same" padding (k odd, padding (k − 1)/2), or stride 2 with k = 3, padding 1
// or k = 1, padding 0; dilation 1, groups 1.
bool is_flat(const ConvGeometry& g) {
  if (g.groups != 1 || g.dil_h != 1 || g.dil_w != 1 || g.stride_h != g.stride_w) return false;
  // for_each_entry's division, and run offsets that fit int32 even for a block of one sample
  if (g.C_in * g.kH * g.kW >= (int64_t{1} << 24) || g.kH * g.kW >= (int64_t{1} << 16)) return false;
  const int64_t s = g.stride_h, row = g.W_out + (g.kW - 1) / 2, plane = (g.H_out + (g.kH - 1) / 2) * row;
  const int64_t slots = std::max(g.C_in * std::min(s, g.kH) * std::min(s, g.kW), g.C_out);
  if ((slots + 2) * plane + g.kH * row + 64 >= INT32_MAX) return false;
  auto same = [](int64_t k, int64_t p) { return k % 2 == 1 && p == k / 2; };
  auto halving = [](int64_t k, int64_t p) { return (k == 3 && p == 1) || (k == 1 && p == 0); };
  if (g.stride_h == 1) return same(g.kH, g.pad_h) && same(g.kW, g.pad_w);
  return g.stride_h == 2 && halving(g.kH, g.pad_h) && halving(g.kW, g.pad_w);
}

// Floats of one flat block: about 1 MiB, so a block's input stays in L2 while W streams by.
constexpr int64_t kBlockFloats = int64_t{256} << 10;

// Pointwise stride-1 layers on maps of at least this many pixels run one sample per block, read
// and written in place: a sample's (C, H·W) planes are already the flat layout.
constexpr int64_t kInPlacePixels = 64;

bool in_flat_layout(const ConvGeometry& g) {
  return g.kH == 1 && g.kW == 1 && g.stride_h == 1 && g.H * g.W >= kInPlacePixels;
}

// The grid is the output's (H_out × W_out, a border of (k − 1)/2 shared as above). At stride 2
// the input is split into its phases, x_(pr,pc)[a][b] = x[2a + pr][2b + pc], each laid out on
// the grid, so that tap (ki, kj) reads phase (pr, pc) shifted by (dr, dc) with
// ki − p = 2·dr + pr: a contiguous run again. Slot c·phases + phase holds one channel's phase.
struct Flat {
  const ConvGeometry& g;
  int64_t n0, nb, s, ph, pw, bh, bw, row, plane, S;
  Flat(const ConvGeometry& g_, int64_t n0_, int64_t nb_)
      : g(g_),
        n0(n0_),
        nb(nb_),
        s(g_.stride_h),
        ph(std::min(s, g_.kH)),
        pw(std::min(s, g_.kW)),
        bh((g_.kH - 1) / 2),
        bw((g_.kW - 1) / 2),
        row(g_.W_out + bw),
        plane((g_.H_out + bh) * row),
        S(nb_ * plane) {}
  int64_t phases() const { return ph * pw; }
  // `slots` planes, with the slack the last entry's run reads past the grid (zeros).
  int64_t floats(int64_t slots) const { return slots * S + (2 * bh + 2) * row + 64; }
  struct Tap {
    int64_t phase, dr, dc;
  };
  Tap tap(int64_t t) const {
    const int64_t er = t / g.kW - g.pad_h, ec = t % g.kW - g.pad_w;
    const int64_t pr = ((er % s) + s) % s, pc = ((ec % s) + s) % s;
    return {pr * pw + pc, (er - pr) / s, (ec - pc) / s};
  }
  // The block's input and output slots: views of the tensors themselves for in_place layers,
  // else filled into (or extracted from) the scratch buffer.
  const float* input_view(const float* x, float* scratch) const {
    return in_flat_layout(g) ? x + n0 * g.C_in * g.H * g.W : fill_input(x, scratch);
  }
  const float* output_view(const float* dy, bool border, float* scratch) const {
    return in_flat_layout(g) ? dy + n0 * g.C_out * g.H_out * g.W_out : fill_output(dy, border, scratch);
  }
  float* output_target(float* y, float* scratch) const {
    return in_flat_layout(g) ? y + n0 * g.C_out * g.H_out * g.W_out : scratch;
  }
  float* input_target(float* dx, float* scratch) const {
    return in_flat_layout(g) ? dx + n0 * g.C_in * g.H * g.W : scratch;
  }
  float* zeroed(float* out, int64_t slots) const {
    std::memset(out, 0, sizeof(float) * floats(slots));
    return out;
  }
  // The input's phases into their slots, each at the border.
  float* fill_input(const float* x, float* out) const {
    zeroed(out, g.C_in * phases());
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t c = 0; c < g.C_in; ++c)
        for (int64_t phase = 0; phase < phases(); ++phase) {
          const float* src = x + ((n0 + b) * g.C_in + c) * g.H * g.W;
          float* dst = out + (c * phases() + phase) * S + b * plane + bh * row + bw;
          for (int64_t a = 0, ih = phase / pw; ih < g.H; ++a, ih += s)
            for (int64_t j = 0, iw = phase % pw; iw < g.W; ++j, iw += s) dst[a * row + j] = src[ih * g.W + iw];
        }
    return out;
  }
  // dy (N, C_out, H_out, W_out) onto the grid, at the border (dx) or at the corner (dW).
  float* fill_output(const float* dy, bool border, float* out) const {
    zeroed(out, g.C_out);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t o = 0; o < g.C_out; ++o)
        for (int64_t r = 0; r < g.H_out; ++r)
          std::memcpy(out + o * S + b * plane + (r + (border ? bh : 0)) * row + (border ? bw : 0),
                      dy + (((n0 + b) * g.C_out + o) * g.H_out + r) * g.W_out, sizeof(float) * g.W_out);
    return out;
  }
  // y's block ← the grid's corner H_out × W_out of each of C_out slots.
  void extract_output(const float* flat, float* y) const {
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t o = 0; o < g.C_out; ++o)
        for (int64_t r = 0; r < g.H_out; ++r)
          std::memcpy(y + (((n0 + b) * g.C_out + o) * g.H_out + r) * g.W_out, flat + o * S + b * plane + r * row,
                      sizeof(float) * g.W_out);
  }
  // dx's block ← the input slots' phases, interleaved back (the adjoint of fill_input).
  void extract_input(const float* flat, float* dx) const {
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t c = 0; c < g.C_in; ++c) {
        float* dst = dx + ((n0 + b) * g.C_in + c) * g.H * g.W;
        if (phases() < s * s) std::memset(dst, 0, sizeof(float) * g.H * g.W);  // pixels no tap reads
        for (int64_t phase = 0; phase < phases(); ++phase) {
          const float* src = flat + (c * phases() + phase) * S + b * plane;
          for (int64_t a = 0, ih = phase / pw; ih < g.H; ++a, ih += s)
            for (int64_t j = 0, iw = phase % pw; iw < g.W; ++j, iw += s) dst[ih * g.W + iw] = src[a * row + j];
        }
      }
  }
};

int64_t samples_per_flat_block(const ConvGeometry& g) {
  if (in_flat_layout(g)) return 1;
  const Flat one(g, 0, 1);
  return std::max<int64_t>(1, kBlockFloats / (std::max(g.C_in * one.phases(), g.C_out) * one.plane));
}

// body(chunk, block) for the blocks of every chunk of samples, chunks run by the pool.
template <typename Body>
void for_each_flat_block(const ConvGeometry& g, int64_t chunks, Body body) {
  const int64_t B = samples_per_flat_block(g);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t n = g.N * c / chunks, end = g.N * (c + 1) / chunks; n < end; n += B)
        body(c, Flat(g, n, std::min(B, end - n)));
  });
}

// Per tap t = ki·kW + kj: its phase and its offset inside a slot, forward and adjoint.
struct TapTable {
  std::vector<int32_t> phase, forward, adjoint;
  explicit TapTable(const Flat& f) {
    for (int64_t t = 0; t < f.g.kH * f.g.kW; ++t) {
      const Flat::Tap k = f.tap(t);
      phase.push_back(static_cast<int32_t>(k.phase));
      forward.push_back(static_cast<int32_t>((k.dr + f.bh) * f.row + k.dc + f.bw));
      adjoint.push_back(static_cast<int32_t>((f.bh - k.dr) * f.row + f.bw - k.dc));
    }
  }
};

// body(o, j, c, t) for W's entries row by row, with the channel c = col / taps and tap t of
// column col[j] from a multiplication: below 2^24 columns it is at most 2^-16 off before the
// floor, less than 1/taps for taps below 2^16 (is_flat checks both), so the floor is exact.
template <typename Body>
void for_each_entry(const kernels::CsrRows& w, int64_t M, int64_t taps, Body body) {
  const uint64_t magic = ((uint64_t{1} << 40) + static_cast<uint64_t>(taps) - 1) / static_cast<uint64_t>(taps);
  for (int64_t o = 0; o < M; ++o)
    for (int64_t j = w.row_begin[o]; j < w.row_end[o]; ++j) {
      const int64_t c = static_cast<int64_t>((static_cast<uint64_t>(w.col[j]) * magic) >> 40);
      body(o, j, c, w.col[j] - c * taps);
    }
}

// W's entries with their forward run offsets as column indices.
std::vector<int32_t> forward_offsets(const Flat& f, const kernels::CsrRows& w, int64_t M) {
  const TapTable taps(f);
  std::vector<int32_t> offsets(w.row_begin[M]);
  for_each_entry(w, M, f.g.kH * f.g.kW, [&](int64_t, int64_t j, int64_t c, int64_t t) {
    offsets[j] = static_cast<int32_t>((c * f.phases() + taps.phase[t]) * f.S + taps.forward[t]);
  });
  return offsets;
}

// The input gradient's rows: per input slot (channel, phase), W's entries (o, c, ki, kj) that
// read it, in W's order, with value w and the adjoint offset over dy's grid.
struct ChannelRows {
  std::vector<int64_t> row_ptr;
  std::vector<int32_t> col;
  std::vector<float> values;
};
ChannelRows channel_rows(const Flat& f, const kernels::CsrRows& w, int64_t M) {
  const TapTable taps(f);
  const int64_t nnz = w.row_begin[M], slots = f.g.C_in * f.phases(), k = f.g.kH * f.g.kW;
  ChannelRows t{std::vector<int64_t>(slots + 1, 0), std::vector<int32_t>(nnz), std::vector<float>(nnz)};
  for_each_entry(w, M, k,
                 [&](int64_t, int64_t, int64_t c, int64_t tap) { ++t.row_ptr[c * f.phases() + taps.phase[tap] + 1]; });
  for (int64_t c = 0; c < slots; ++c) t.row_ptr[c + 1] += t.row_ptr[c];
  std::vector<int64_t> next(t.row_ptr.begin(), t.row_ptr.end() - 1);
  for_each_entry(w, M, k, [&](int64_t o, int64_t j, int64_t c, int64_t tap) {
    const int64_t at = next[c * f.phases() + taps.phase[tap]]++;
    t.col[at] = static_cast<int32_t>(o * f.S + taps.adjoint[tap]);
    t.values[at] = w.values[j];
  });
  return t;
}

// y (R, S) = rows · xf in bands of input channels: one band's runs around a tile of the grid fit
// L1 (about 24 KiB), so its entries re-read them there instead of from L2; bands add into y.
void banded_rows(const Flat& f, const std::vector<int64_t>& row_ptr, int64_t R, const std::vector<int32_t>& offsets,
                 const float* values, const float* xf, float* yf) {
  const int64_t window = (f.g.kH - 1) * f.row + f.g.kW + 64;
  const int64_t band = std::max<int64_t>(1, (int64_t{6} << 10) / window), S = f.S;
  const int64_t channels = (offsets.empty() ? 0 : *std::max_element(offsets.begin(), offsets.end()) / S) + 1;
  // bounds[b·R + r]: row r's first entry in band b (entries ascend by channel within a row).
  const int64_t bands = (channels + band - 1) / band;
  std::vector<int64_t> bounds((bands + 1) * R);
  for (int64_t r = 0; r < R; ++r) {
    int64_t j = row_ptr[r];
    for (int64_t b = 0; b <= bands; ++b) {
      while (j < row_ptr[r + 1] && (b == bands || offsets[j] < b * band * S)) ++j;
      bounds[b * R + r] = b == 0 ? row_ptr[r] : j;
    }
  }
  if (bands == 0) return (void)std::memset(yf, 0, sizeof(float) * R * S);
  const kernels::Table& k = kernels::kernels();
  parallel_for(R, 16, [&](int64_t r0, int64_t r1) {  // one region for all bands: a small layer's bands cost no more
    for (int64_t b = 0; b < bands; ++b)
      k.csr_times_dense({bounds.data() + b * R, bounds.data() + (b + 1) * R, offsets.data(), values}, r0, r1, xf, 1, S,
                        yf, S, b > 0);
  });
}

// Grids narrower than this (a pointwise layer's 1×1 and 2×2 maps at batch 1) run one gathering
// product per column instead: a tile of vectors would be mostly empty lanes.
constexpr int64_t kVectorColumns = 2;

// y (R, S) = rows · xf, by the tiled kernel in bands, or column by column for narrow grids.
// Decided from the whole batch's grid, never from the block (whose size follows the thread
// count): the two kernels round differently.
void rows_product(const Flat& f, const std::vector<int64_t>& row_ptr, int64_t R, const std::vector<int32_t>& offsets,
                  const float* values, const float* xf, float* yf) {
  if (f.g.N * f.plane >= kVectorColumns) return banded_rows(f, row_ptr, R, offsets, values, xf, yf);
  const kernels::Table& k = kernels::kernels();
  const kernels::CsrRows rows{row_ptr.data(), row_ptr.data() + 1, offsets.data(), values};
  parallel_for(R, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> column(r1 - r0);
    for (int64_t q = 0; q < f.S; ++q) {
      k.csr_times_vector(rows, r0, r1, xf + q, column.data() - r0);
      for (int64_t r = r0; r < r1; ++r) yf[r * f.S + q] = column[r - r0];
    }
  });
}

void flat_forward(const ConvGeometry& g, const kernels::CsrRows& w, const float* x, float* y) {
  const std::vector<int64_t> row_ptr(w.row_begin, w.row_begin + g.C_out + 1);
  for_each_flat_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const Flat& f) {
    const std::vector<int32_t> offsets = forward_offsets(f, w, g.C_out);
    const float* xf = f.input_view(x, scratch(0, f.floats(g.C_in * f.phases())));
    float* yf = f.output_target(y, scratch(1, f.floats(g.C_out)));
    rows_product(f, row_ptr, g.C_out, offsets, w.values, xf, yf);
    if (!in_flat_layout(g)) f.extract_output(yf, y);
  });
}

void flat_backward_input(const ConvGeometry& g, const kernels::CsrRows& w, const float* dy, float* dx) {
  for_each_flat_block(g, std::min<int64_t>(num_threads(), g.N), [&](int64_t, const Flat& f) {
    const ChannelRows rows = channel_rows(f, w, g.C_out);
    const float* dyf = f.output_view(dy, true, scratch(0, f.floats(g.C_out)));
    float* dxf = f.input_target(dx, scratch(1, f.floats(g.C_in * f.phases())));
    rows_product(f, rows.row_ptr, g.C_in * f.phases(), rows.col, rows.values.data(), dyf, dxf);
    if (!in_flat_layout(g)) f.extract_input(dxf, dx);
  });
}

// Each chunk of samples sums into its own dv, added in chunk order (as conv2d_backward_weight).
void flat_backward_weight(const ConvGeometry& g, const kernels::CsrRows& w, int64_t nnz, const float* dy,
                          const float* x, float* dv) {
  const kernels::Table& k = kernels::kernels();
  const int64_t chunks = std::min<int64_t>(kSampleChunks, g.N);
  std::vector<float> partial(chunks * nnz, 0.f);
  for_each_flat_block(g, chunks, [&](int64_t c, const Flat& f) {
    const std::vector<int32_t> offsets = forward_offsets(f, w, g.C_out);
    const float* xf = f.input_view(x, scratch(0, f.floats(g.C_in * f.phases())));
    const float* dyf = f.output_view(dy, false, scratch(1, f.floats(g.C_out)));
    const kernels::CsrRows entries{w.row_begin, w.row_end, offsets.data(), w.values};
    // In tiles of the grid: a channel's k·k overlapping runs then share their lines in L1.
    constexpr int64_t kTile = 256;
    parallel_for(g.C_out, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t q = 0; q < f.S; q += kTile)
        k.csr_sampled_dots(entries, r0, r1, dyf + q, f.S, xf + q, 1, std::min(kTile, f.S - q),
                           partial.data() + c * nnz);
    });
  });
  sum_chunks(partial, chunks, nnz, dv);
}

}  // namespace

const char* sparse_conv_path(const ConvGeometry& g) { return is_flat(g) ? "sparse-flat" : "sparse-gemm"; }

void sparse_conv2d_forward(const ConvGeometry& g, const kernels::CsrRows& w, const float* x, const float* bias,
                           float* y) {
  SHEARS_CHECK(g.groups == 1, "conv2d", "a sparse weight needs groups 1, got ", g.groups);
  if (g.N == 0) return;
  if (!is_flat(g)) return sparse_gemm_forward(g, w, x, bias, y);
  flat_forward(g, w, x, y);
  if (bias) add_bias(g, bias, y);
}

void sparse_conv2d_backward_input(const ConvGeometry& g, const kernels::CsrRows& w, const kernels::CsrRows& wt,
                                  const float* dy, float* dx) {
  if (g.N == 0) return;
  if (!is_flat(g)) return sparse_gemm_backward_input(g, wt, dy, dx);
  flat_backward_input(g, w, dy, dx);
}

void sparse_conv2d_backward_weight(const ConvGeometry& g, const kernels::CsrRows& w, int64_t nnz, const float* dy,
                                   const float* x, float* dv) {
  if (g.N == 0) return (void)std::fill(dv, dv + nnz, 0.f);
  if (!is_flat(g)) return sparse_gemm_backward_weight(g, w, nnz, dy, x, dv);
  flat_backward_weight(g, w, nnz, dy, x, dv);
}

}  // namespace shears
