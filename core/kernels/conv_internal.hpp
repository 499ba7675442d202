// What the convolution engine's files share (core/kernels/conv.cpp, sparse_conv.cpp); not installed.
#pragma once
#include <cstdint>
#include <vector>

#include "core/kernels/conv.hpp"
#include "core/kernels/kernels.hpp"

namespace shears {

// Weight gradients are sums over the batch, split into this many chunks of samples whatever the
// thread count, so that a result depends on the shapes only (up to this many threads share them).
// Two, measured on the 2-core machines: four cost VGG-11-BN's training step 10% (961-1040 ms
// against 862-925, `shears bench --model vgg11_bn --steps 4`), from the larger partial sums.
constexpr int64_t kSampleChunks = 2;

// Per-thread scratch buffers (slots 0 and 1), reused across calls; they grow to the largest need.
float* scratch(int slot, int64_t floats);
// out = the `chunks` partial sums of `size` floats each, added in chunk order (a weight gradient
// summed over fixed chunks of samples, whatever the thread count).
void sum_chunks(const std::vector<float>& partial, int64_t chunks, int64_t size, float* out);
// y[i] += bias[i's channel] over (N, C_out, H_out, W_out).
void add_bias(const ConvGeometry& g, const float* bias, float* y);
// Rows [0, rows) of y = w · x, or y += w · x (kernels::csr_times_dense), split over the pool
// (inline inside a sample-parallel block).
void sparse_rows(const kernels::CsrRows& w, int64_t rows, const float* x, int64_t ldx, int64_t P, float* y, int64_t ldy,
                 bool accumulate);

// The sparse convolutions over im2col's column blocks (any geometry with groups 1).
void sparse_gemm_forward(const ConvGeometry& g, const kernels::CsrRows& w, const float* x, const float* bias, float* y);
void sparse_gemm_backward_input(const ConvGeometry& g, const kernels::CsrRows& wt, const float* dy, float* dx);
void sparse_gemm_backward_weight(const ConvGeometry& g, const kernels::CsrRows& w, int64_t nnz, const float* dy,
                                 const float* x, float* dv);

}  // namespace shears
