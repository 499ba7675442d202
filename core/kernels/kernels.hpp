// The kernel table: SIMD kernels written once (core/kernels/kernels_impl.hpp) and compiled per
// instruction set; the table for this CPU is chosen once at start-up, or forced with
// SHEARS_ISA=scalar|avx2|avx512. Ops call kernels() and compose these with parallel_for.
// Every pointer argument is a contiguous float array of the stated length; no alignment needed.
#pragma once
#include <cstdint>

namespace shears::kernels {

enum class Isa { Scalar, Avx2, Avx512 };
const char* isa_name(Isa isa);

enum class Binary { Add, Sub, Mul, Div };

struct SgdStep {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first;  // first: the momentum buffer is initialised to the gradient
};

struct AdamStep {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  int64_t step;    // t, from 1
};

// The input of the direct 3×3 kernels: C planes `plane` floats apart, from which output pixel
// (oh, ow) reads tap t = 3·ki + kj at offset oh·row + ow + tap[t]; reads reach up to one vector
// past the last output pixel's taps (the caller leaves that much slack). Either the input with a
// zero border (row = W + 2, tap = ki·row + kj), or column-shifted copies of it over which every
// tap runs contiguously through the flattened output (one row of H_out·W_out pixels; the
// layouts are built in core/ops/conv2d.cpp).
struct Conv3x3Input {
  int64_t C, plane, row;
  int64_t tap[9];
  int taps = 9;  // conv3x3 also takes 1, 2 or 4 (the first ones of tap), weights packed by that count
};

// A weight's non-zero entries in compressed rows (CSR): row r holds entries [row_begin[r],
// row_end[r]) of col and values; for a whole matrix row_end = row_begin + 1 (core/sparse.hpp
// builds them), for a band of its columns the band's segment of each row.
struct CsrRows {
  const int64_t* row_begin;
  const int64_t* row_end;
  const int32_t* col;
  const float* values;
};

struct Table {
  Isa isa;
  // out = a ∘ b elementwise (n each), and out = a ∘ s with a scalar s.
  void (*binary)(Binary op, const float* a, const float* b, float* out, int64_t n);
  void (*binary_scalar)(Binary op, const float* a, float s, float* out, int64_t n);
  // y = x·scale + shift.
  void (*scale_shift)(const float* x, float* y, int64_t n, float scale, float shift);
  // The ReLU family: y = x > 0 ? min(x, upper) : slope·x  (relu: 0, ∞; relu6: 0, 6; leaky: s, ∞)
  // and its backward from the input: dx = x > 0 ? (x < upper ? g : 0) : slope·g.
  void (*relu_family)(const float* x, float* y, int64_t n, float slope, float upper);
  void (*relu_family_backward)(const float* x, const float* g, float* dx, int64_t n, float slope, float upper);
  // Reductions accumulated in float lanes over blocks, blocks summed in double.
  double (*sum)(const float* x, int64_t n);
  double (*sum_squared_deviation)(const float* x, int64_t n, float mean);  // Σ (x − mean)²
  double (*dot)(const float* a, const float* b, int64_t n);
  double (*dot_centered)(const float* g, const float* x, int64_t n, float mean);  // Σ g·(x − mean)
  // Float32 data in float64 arithmetic (SWAP's per-sample gradient matrix G, core/simd F64x4):
  // Σ g·x in four accumulators of four lanes; y += a·g; y += Σ_{r<4} a_r·g_r (y loaded once for
  // four rows). The same roundings in the same order on every ISA.
  double (*dot_f32_f64)(const float* g, const double* x, int64_t n);
  void (*axpy_f32_f64)(double a, const float* g, double* y, int64_t n);
  void (*axpy4_f32_f64)(const double* a, const float* const* g, double* y, int64_t n);
  // dx = a·g + b·x + c (the batch-norm backward for one channel lane).
  void (*affine2)(const float* g, const float* x, float* dx, int64_t n, float a, float b, float c);
  // Depthwise 3×3 convolution of one (H, W) plane with padding 1 and stride 1 or 2:
  // y (H_out, W_out) = Σ w[ki][kj] · x[s·oh − 1 + ki][s·ow − 1 + kj]; the backward for input
  // writes dx (H, W); the backward for weight adds Σ over `count` planes (x and dy advancing by
  // x_step and dy_step) into dw[9].
  void (*depthwise3x3)(const float* x, int64_t H, int64_t W, const float* w, float* y, int64_t stride);
  void (*depthwise3x3_backward_input)(const float* dy, int64_t H, int64_t W, const float* w, float* dx, int64_t stride);
  void (*depthwise3x3_backward_weight)(const float* dy, const float* x, int64_t H, int64_t W, float* dw, int64_t stride,
                                       int64_t count, int64_t x_step, int64_t dy_step);
  // Direct 3×3 convolution of one sample from input planes the caller prepares (Conv3x3Input);
  // wp holds the weights packed [⌈M/4⌉][C][taps][4] (channels ≥ M zero); y (M, H, W) is the output
  // (overwritten). The backward for weight adds into dw (M, C, 9) the sum over `count` samples
  // (xp, dy advancing by x_step, dy_step; dy is (M, H, W) each).
  void (*conv3x3)(const float* xp, const Conv3x3Input& in, int64_t H, int64_t W, const float* wp, int64_t M, float* y);
  // The same for maps under 8 wide, vectors across output channels: weights packed
  // [⌈M/b⌉][C][9][b] with b = conv3x3_small_block.
  void (*conv3x3_small)(const float* xp, const Conv3x3Input& in, int64_t H, int64_t W, const float* wp, int64_t M,
                        float* y);
  int conv3x3_small_block;
  void (*conv3x3_backward_weight)(const float* dy, const float* xp, const Conv3x3Input& in, int64_t H, int64_t W,
                                  int64_t M, float* dw, int64_t count, int64_t x_step, int64_t dy_step);
  // The same for the flat layout's small maps (conv2d.cpp), vectors across output channels.
  void (*conv3x3_backward_weight_small)(const float* dy, const float* xp, const Conv3x3Input& in, int64_t H, int64_t W,
                                        int64_t M, float* dw, int64_t count, int64_t x_step, int64_t dy_step);
  // The stride-2 planes of one (H, W) channel (Conv3x3Input, conv2d.cpp): row (ih + 1)/2 of copy
  // 2·kj + (ih + 1) % 2 (copies `copy` floats apart, rows ⌈W/2⌉ wide) ← x_ih[2·ow + kj − 1], 0
  // past the row's ends; other floats are left as they are.
  void (*stride2_planes)(const float* x, int64_t H, int64_t W, float* planes, int64_t copy);
  // x[2i] = even[i], x[2i + 1] = odd[i] for the n floats of x.
  void (*merge_even_odd)(const float* even, const float* odd, int64_t n, float* x);
  // y = exp(x) (within 2 ulp of expf), and y = log_softmax of each of `rows` contiguous rows.
  void (*exp)(const float* x, float* y, int64_t n);
  void (*log_softmax_rows)(const float* x, float* y, int64_t rows, int64_t cols);
  // Optimizer steps over one parameter tensor, exactly torch.optim's update order (1.13):
  //   SGD:  d = g + wd·p;  buf = first ? d : momentum·buf + (1 − dampening)·d;
  //         d = nesterov ? d + momentum·buf : buf (when momentum ≠ 0);  p −= lr·d
  //   Adam: g += wd·p (Adam) or p ·= 1 − lr·wd (AdamW, decoupled);  m = β1·m + (1 − β1)·g;
  //         v = β2·v + (1 − β2)·g²;  p −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
  // Sparse weight × dense matrix, rows [r0, r1) of y (P floats each, ldy apart) = W · x, or
  // y += W · x (accumulate), with x's rows ldx apart: each entry's value times its x row, summed
  // in the row's entry order.
  void (*csr_times_dense)(const CsrRows& w, int64_t r0, int64_t r1, const float* x, int64_t ldx, int64_t P, float* y,
                          int64_t ldy, bool accumulate);
  // The same for one column: y[r] = Σ values[j]·x[col[j]] (Linear at batch 1).
  void (*csr_times_vector)(const CsrRows& w, int64_t r0, int64_t r1, const float* x, float* y);
  // The weight gradient on the kept entries only, for rows [r0, r1):
  // dv[j] += Σ_p dy[r][p]·x[col[j]][p] (dy rows lddy apart, x rows ldx apart, P floats each).
  void (*csr_sampled_dots)(const CsrRows& w, int64_t r0, int64_t r1, const float* dy, int64_t lddy, const float* x,
                           int64_t ldx, int64_t P, float* dv);
  // b[c][r] = a[r][c] for r < rows, c < cols (a's rows lda apart, b's ldb apart).
  void (*transpose)(const float* a, int64_t lda, int64_t rows, int64_t cols, float* b, int64_t ldb);
  void (*sgd_step)(float* p, const float* g, float* momentum_buffer, int64_t n, const SgdStep& step);
  void (*adam_step)(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& step);
};

const Table& kernels();           // the table in use: chosen for this CPU, SHEARS_ISA, or use_isa()
const Table& table_for(Isa isa);  // a specific one (throws if this CPU cannot run it)
bool cpu_supports(Isa isa);
// Switches the table in use (tests and benchmarks compare ISAs); not while kernels are running.
void use_isa(Isa isa);

// Per-ISA tables, defined in core/kernels/isa_*.cpp.
const Table& scalar_table();
const Table& avx2_table();
const Table& avx512_table();

}  // namespace shears::kernels
