// A thin SIMD vocabulary (ggml's simd-mappings in spirit): kernels are written once as
// templates over a vector type V and compiled once per instruction set, each in its own
// translation unit built with that ISA's flags (core/kernels/isa_*.cpp).
//   V::width            lanes
//   V::load/store       unaligned full-width access
//   V::load_tail/store_tail  the first n < width lanes (masked; other lanes read as 0)
//   V::set1, zero, add, sub, mul, div, fma(a, b, c) = a·b + c, max, min, sqrt, hsum
//   V::cmp_gt_select(a, b, x) = a > b ? x : 0 per lane
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace shears::simd {

struct Scalar {
  using reg = float;
  static constexpr int width = 1;
  static reg load(const float* p) { return *p; }
  static void store(float* p, reg v) { *p = v; }
  static reg load_tail(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static void store_tail(float* p, reg v, int n) {
    if (n > 0) *p = v;
  }
  static reg set1(float v) { return v; }
  static reg zero() { return 0.f; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg div(reg a, reg b) { return a / b; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg max(reg a, reg b) { return std::max(a, b); }
  static reg min(reg a, reg b) { return std::min(a, b); }
  static reg sqrt(reg a) { return __builtin_sqrtf(a); }
  static float hsum(reg v) { return v; }
  static reg cmp_gt_select(reg a, reg b, reg x) { return a > b ? x : 0.f; }
};

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  using reg = __m256;
  static constexpr int width = 8;
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load_tail(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static void store_tail(float* p, reg v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg sqrt(reg a) { return _mm256_sqrt_ps(a); }
  static float hsum(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static reg cmp_gt_select(reg a, reg b, reg x) { return _mm256_and_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ), x); }
};
#endif

#if defined(__AVX512F__)
struct Avx512 {
  using reg = __m512;
  static constexpr int width = 16;
  static __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg load_tail(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static void store_tail(float* p, reg v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg sqrt(reg a) { return _mm512_sqrt_ps(a); }
  static float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  static reg cmp_gt_select(reg a, reg b, reg x) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), x);
  }
};
#endif

}  // namespace shears::simd
