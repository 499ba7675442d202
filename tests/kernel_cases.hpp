// One case list drives the kernel tests and the benchmarks (docs/design.md#case-lists): every benchmarked
// shape is also tested (the tests run it at a small batch against the reference kernels).
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops.hpp"

namespace shears::cases {

struct ConvCase {
  const char* name;
  int64_t C_in, H, W, C_out, k, stride, pad, groups;
  int64_t bench_batch;  // 0: tested only
  const char* paths;    // the engine's path for the forward, dx and dW (conv_path), checked by the tests
  Conv2dOptions options() const { return {{stride, stride}, {pad, pad}, {1, 1}, groups}; }
  Shape input(int64_t n) const { return {n, C_in, H, W}; }
  Shape weight() const { return {C_out, C_in / groups, k, k}; }
};

inline const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      // ResNet-20 (CIFAR): 16/32/64 channels.
      {"resnet20_stem_3to16", 3, 32, 32, 16, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      {"resnet20_3x3_16", 16, 32, 32, 16, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      {"resnet20_3x3_32_s2", 16, 32, 32, 32, 3, 2, 1, 1, 128, "direct3x3 direct3x3-parity direct3x3"},
      {"resnet20_3x3_32", 32, 16, 16, 32, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      {"resnet20_3x3_64_s2", 32, 16, 16, 64, 3, 2, 1, 1, 128, "direct3x3 direct3x3-parity direct3x3"},
      {"resnet20_3x3_64", 64, 8, 8, 64, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      // ResNet-18 (CIFAR stem) and VGG-11: the 64→64 32×32 layer is the headline figure.
      {"resnet18_3x3_64", 64, 32, 32, 64, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      {"resnet18_3x3_128", 128, 16, 16, 128, 3, 1, 1, 1, 128, "direct3x3 direct3x3 gemm"},
      {"resnet18_3x3_256", 256, 8, 8, 256, 3, 1, 1, 1, 128, "direct3x3 direct3x3 gemm"},
      {"resnet18_3x3_512", 512, 4, 4, 512, 3, 1, 1, 1, 128, "direct3x3 direct3x3 gemm"},
      {"resnet18_down_1x1_s2", 64, 32, 32, 128, 1, 2, 0, 1, 128, "gemm gemm gemm"},
      {"vgg11_stem_3to64", 3, 32, 32, 64, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      {"vgg11_3x3_64to128", 64, 16, 16, 128, 3, 1, 1, 1, 128, "direct3x3 direct3x3 direct3x3"},
      // MobileNetV1: depthwise 3×3 and pointwise 1×1.
      {"mobilenet_dw3x3_256", 256, 8, 8, 256, 3, 1, 1, 256, 128, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"mobilenet_dw3x3_128_s2", 128, 16, 16, 128, 3, 2, 1, 128, 128, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"mobilenet_pw1x1_256", 256, 8, 8, 256, 1, 1, 0, 1, 128, "gemm gemm gemm"},
      // Awkward shapes, tested only: odd sizes, tails, groups, no padding, stride 2 on odd input.
      {"odd_3x3_5to7", 5, 9, 11, 7, 3, 1, 1, 1, 0, "direct3x3 direct3x3 direct3x3"},
      {"odd_dw3x3_s2", 6, 7, 9, 6, 3, 2, 1, 6, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"odd_dw3x3_s1_wide", 3, 5, 37, 3, 3, 1, 1, 3, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"dw3x3_s1_rows_of_two_vectors", 4, 6, 16, 4, 3, 1, 1, 4, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"dw3x3_s1_4x4", 5, 4, 4, 5, 3, 1, 1, 5, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"dw3x3_s1_single_row", 3, 1, 16, 3, 3, 1, 1, 3, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"dw3x3_s2_wide", 3, 6, 37, 3, 3, 2, 1, 3, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"dw3x3_s2_single_row", 2, 1, 18, 2, 3, 2, 1, 2, 0, "depthwise3x3 depthwise3x3 depthwise3x3"},
      {"grouped_3x3", 8, 6, 6, 12, 3, 2, 0, 4, 0, "gemm gemm gemm"},
      {"pointwise_odd", 7, 3, 5, 9, 1, 1, 0, 1, 0, "gemm gemm gemm"},
      {"5x5_pad2", 4, 10, 10, 6, 5, 1, 2, 1, 0, "gemm gemm gemm"},
      // The direct 3×3 kernel: a 28-wide map (vector tail), out channels not a multiple of 4, a
      // weight gradient over several sample blocks, stride 2 on odd sizes, the flat layout of
      // outputs under 16 wide with a vector tail; and a map too narrow for it (its small-map kernel).
      {"direct_3x3_28", 6, 28, 28, 10, 3, 1, 1, 1, 0, "direct3x3 direct3x3 direct3x3"},
      {"direct_3x3_blocks", 40, 32, 32, 24, 3, 1, 1, 1, 0, "direct3x3 direct3x3 direct3x3"},
      {"direct_3x3_s2_odd", 3, 9, 19, 6, 3, 2, 1, 1, 0, "direct3x3 direct3x3-parity direct3x3"},
      {"direct_3x3_flat_tail", 5, 9, 13, 6, 3, 1, 1, 1, 0,
       "direct3x3 direct3x3 direct3x3"},  // outputs under 16 wide: the flat layout
      {"direct_3x3_flat_s2_odd", 4, 15, 17, 9, 3, 2, 1, 1, 0, "direct3x3 direct3x3-parity direct3x3"},
      {"narrow_3x3_7", 4, 7, 7, 5, 3, 1, 1, 1, 0, "direct3x3 direct3x3 gemm"},
      {"small_3x3_s2", 6, 7, 9, 20, 3, 2, 1, 1, 0, "direct3x3 gemm gemm"},
      {"small_3x3_1x1", 5, 1, 1, 3, 3, 1, 1, 1, 0, "direct3x3 direct3x3 gemm"},
  };
  return cases;
}

}  // namespace shears::cases
