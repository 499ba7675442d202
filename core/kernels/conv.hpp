// The convolution engine: the fast conv2d kernels and the one function that chooses between them.
// Shapes:
//   x (N, C_in, H, W) · weight (C_out, C_in/groups, kH, kW) -> y (N, C_out, H_out, W_out)
//   H_out = (H + 2·pad_h − dil_h·(kH − 1) − 1) / stride_h + 1   (likewise W_out)
// The path depends on the geometry and the pass only (never on timing or the thread count), so a
// result depends on the shapes, the seed and the instruction set alone.
#pragma once
#include <cstdint>
#include <optional>

#include "core/kernels/kernels.hpp"

namespace shears {

struct ConvGeometry {
  int64_t N, C_in, H, W, C_out, kH, kW, H_out, W_out;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t cin_g() const { return C_in / groups; }
  int64_t cout_g() const { return C_out / groups; }
  int64_t gemm_flops() const { return 2 * N * C_out * H_out * W_out * cin_g() * kH * kW; }
};

enum class ConvPass { forward, input_gradient, weight_gradient };

enum class ConvPath {
  gemm,              // im2col (skipped for 1×1 stride 1) + sgemm over blocks of samples
  depthwise3x3,      // the direct depthwise kernel (padding 1, stride 1 or 2)
  direct3x3,         // the direct dense 3×3 kernel (padding 1, stride 1 or 2; dx at stride 1)
  direct3x3_parity,  // dx at stride 2: four stride-1 direct convolutions, one per output parity
};

// The kernel each pass runs for this geometry: the forced path where it can run this pass,
// otherwise the rule of docs/design.md#convolution-paths.
ConvPath conv_path(const ConvGeometry& g, ConvPass pass);
const char* conv_path_name(ConvPath path);
// Whether `path` can run this pass of this geometry (gemm runs every one).
bool conv_path_supports(ConvPath path, const ConvGeometry& g, ConvPass pass);

// Forces one path wherever it applies (benchmarks and tests compare paths), or restores the rule
// with nullopt; not while convolutions run. SHEARS_CONV_PATH=gemm|depthwise3x3|direct3x3|
// direct3x3-parity forces one from the start (auto or empty: the rule).
void force_conv_path(std::optional<ConvPath> path);
std::optional<ConvPath> forced_conv_path();

// Each runs the path conv_path chooses.
void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight(const ConvGeometry& g, const float* dy, const float* x, float* dw);
// Both gradients (either pointer may be null); a depthwise 3×3 computes them in one pass over dy.
void conv2d_backward(const ConvGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw);

// Convolutions (groups 1) with a sparse weight W (C_out, C_in·kH·kW) in compressed rows
// (core/sparse.hpp; wt: its transposed pattern): the flat path for stride-1 "same" convolutions,
// im2col's column blocks otherwise (sparse_conv_path names the choice); the weight gradient is
// formed at W's entries only, dv[j] for entry j.
const char* sparse_conv_path(const ConvGeometry& g);
void sparse_conv2d_forward(const ConvGeometry& g, const kernels::CsrRows& w, const float* x, const float* bias,
                           float* y);
void sparse_conv2d_backward_input(const ConvGeometry& g, const kernels::CsrRows& w, const kernels::CsrRows& wt,
                                  const float* dy, float* dx);
void sparse_conv2d_backward_weight(const ConvGeometry& g, const kernels::CsrRows& w, int64_t nnz, const float* dy,
                                   const float* x, float* dv);

}  // namespace shears
