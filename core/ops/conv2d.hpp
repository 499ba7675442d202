// conv2d's geometry and reference kernels, exposed for tests and benchmarks beside the fast
// kernels of the convolution engine (core/kernels/conv.hpp).
#pragma once
#include <cstdint>

#include "core/kernels/conv.hpp"
#include "core/ops.hpp"

namespace shears {

// Validates shapes and options (throws shears::Error naming the mismatch) and derives the geometry.
ConvGeometry conv_geometry(const Shape& x, const Shape& weight, const Conv2dOptions& opt);

// Reference kernels: direct loops with double accumulation.
void conv2d_forward_ref(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input_ref(const ConvGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_ref(const ConvGeometry& g, const float* dy, const float* x, float* dw);

}  // namespace shears
