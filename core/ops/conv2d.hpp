// conv2d kernels, exposed for tests and benchmarks. Shapes:
//   x (N, C_in, H, W) · weight (C_out, C_in/groups, kH, kW) -> y (N, C_out, H_out, W_out)
//   H_out = (H + 2·pad_h − dil_h·(kH − 1) − 1) / stride_h + 1   (likewise W_out)
#pragma once
#include <cstdint>

#include "core/ops.hpp"

namespace shears {

struct ConvGeometry {
  int64_t N, C_in, H, W, C_out, kH, kW, H_out, W_out;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t cin_g() const { return C_in / groups; }
  int64_t cout_g() const { return C_out / groups; }
  int64_t gemm_flops() const { return 2 * N * C_out * H_out * W_out * cin_g() * kH * kW; }
};

// Validates shapes and options (throws shears::Error naming the mismatch) and derives the geometry.
ConvGeometry conv_geometry(const Shape& x, const Shape& weight, const Conv2dOptions& opt);

// Fast kernels: im2col + sgemm over blocks of samples, a direct SIMD kernel for depthwise 3×3.
void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input(const ConvGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight(const ConvGeometry& g, const float* dy, const float* x, float* dw);
// Both gradients (either pointer may be null); a depthwise 3×3 computes them in one pass over dy.
void conv2d_backward(const ConvGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw);

// Reference kernels: direct loops with double accumulation.
void conv2d_forward_ref(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input_ref(const ConvGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_ref(const ConvGeometry& g, const float* dy, const float* x, float* dw);

}  // namespace shears
