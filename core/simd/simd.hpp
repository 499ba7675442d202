// A thin SIMD vocabulary (ggml's simd-mappings in spirit): kernels are written once as
// templates over a vector type V and compiled once per instruction set, each in its own
// translation unit built with that ISA's flags (core/kernels/isa_*.cpp).
//   V::width            lanes
//   V::load/store       unaligned full-width access
//   V::load_tail/store_tail  the first n < width lanes (masked; other lanes read as 0)
//   V::load_masked(p, on)    the lanes whose int32 flag on[lane] is −1 (the others are 0 and
//                            not read: p may point outside the array there); flags are 0 or −1
//   V::shift_up(v, in = 0)   lane i ← lane i − 1, lane 0 ← in; V::shift_down: lane i ← lane i + 1,
//                            the last lane ← 0 (a row's neighbours at its edges)
//   V::deinterleave(a, b, even, odd)  of the 2·width floats p = a then b: even[i] = p[2i],
//                            odd[i] = p[2i + 1] (a stride-2 row's columns); V::interleave(even, odd, a, b)
//                            its inverse
//   V::set1, zero, add, sub, mul, div, fma(a, b, c) = a·b + c, max, min, sqrt, hsum
//   V::cmp_gt_select(a, b, x) = a > b ? x : 0 per lane
//   V::exp (Cephes' expf polynomial after range reduction, within 2 ulp), V::hmax
//   V::gather(base, idx)     lane i ← base[idx[i]] (width int32 indices; sparse rows)
//   V::half                  (AVX-512 only) the vocabulary of half the width
//   V::f64x4                 four float64 lanes (F64x4 below), the same on every ISA
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace shears::simd {

// Four float64 lanes for kernels that accumulate float32 data in double in one order on every
// ISA (SWAP's mixed precision): load (a double, or a float widened), store, set1, add, mul,
// fma(a, b, c) = a·b + c rounded once, hsum = (l0 + l1) + (l2 + l3). Kernels over it pass every
// product to an fma, so -ffp-contract has nothing left to fuse differently per ISA.
struct F64x4 {
  struct reg {
    double v[4];
  };
  static reg load(const double* p) { return {{p[0], p[1], p[2], p[3]}}; }
  static reg load(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
  static void store(double* p, reg a) {
    for (int i = 0; i < 4; ++i) p[i] = a.v[i];
  }
  static reg set1(double x) { return {{x, x, x, x}}; }
  static reg add(reg a, reg b) { return {{a.v[0] + b.v[0], a.v[1] + b.v[1], a.v[2] + b.v[2], a.v[3] + b.v[3]}}; }
  static reg mul(reg a, reg b) { return {{a.v[0] * b.v[0], a.v[1] * b.v[1], a.v[2] * b.v[2], a.v[3] * b.v[3]}}; }
  static reg fma(reg a, reg b, reg c) {
    reg r;
    for (int i = 0; i < 4; ++i) r.v[i] = __builtin_fma(a.v[i], b.v[i], c.v[i]);
    return r;
  }
  static double hsum(reg a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
};

struct Scalar {
  using reg = float;
  using f64x4 = F64x4;
  static constexpr int width = 1;
  static reg load(const float* p) { return *p; }
  static void store(float* p, reg v) { *p = v; }
  static reg load_tail(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static reg load_masked(const float* p, const int32_t* on) { return *on ? *p : 0.f; }
  static reg gather(const float* base, const int32_t* idx) { return base[*idx]; }
  static void store_tail(float* p, reg v, int n) {
    if (n > 0) *p = v;
  }
  static reg shift_up(reg, float in = 0.f) { return in; }
  static reg shift_down(reg) { return 0.f; }
  static void deinterleave(reg a, reg b, reg& even, reg& odd) {
    even = a;
    odd = b;
  }
  static void interleave(reg even, reg odd, reg& a, reg& b) {
    a = even;
    b = odd;
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
  static reg exp(reg a) { return __builtin_expf(a); }
  static float hsum(reg v) { return v; }
  static float hmax(reg v) { return v; }
  static reg cmp_gt_select(reg a, reg b, reg x) { return a > b ? x : 0.f; }
};

#if defined(__AVX2__) && defined(__FMA__)
// F64x4 in one AVX register (the AVX-512 table uses it too: eight lanes would change the order).
struct F64x4Avx2 {
  using reg = __m256d;
  static reg load(const double* p) { return _mm256_loadu_pd(p); }
  static reg load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static void store(double* p, reg a) { _mm256_storeu_pd(p, a); }
  static reg set1(double x) { return _mm256_set1_pd(x); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static double hsum(reg a) {
    double l[4];
    _mm256_storeu_pd(l, a);
    return (l[0] + l[1]) + (l[2] + l[3]);
  }
};

struct Avx2 {
  using reg = __m256;
  using f64x4 = F64x4Avx2;
  static constexpr int width = 8;
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load_tail(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static reg load_masked(const float* p, const int32_t* on) {
    return _mm256_maskload_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(on)));
  }
  static void store_tail(float* p, reg v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static reg gather(const float* base, const int32_t* idx) {
    return _mm256_i32gather_ps(base, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)), 4);
  }
  static reg shift_up(reg v, float in = 0.f) {
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)), set1(in), 0x01);
  }
  static reg shift_down(reg v) {
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7)), zero(), 0x80);
  }
  static void deinterleave(reg a, reg b, reg& even, reg& odd) {  // per 128-bit lane, then the 64-bit pairs
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
  }
  static void interleave(reg even, reg odd, reg& a, reg& b) {  // pairs per 128-bit lane, then the lanes in order
    const reg low = _mm256_unpacklo_ps(even, odd), high = _mm256_unpackhi_ps(even, odd);
    a = _mm256_permute2f128_ps(low, high, 0x20);
    b = _mm256_permute2f128_ps(low, high, 0x31);
  }
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
  static reg exp(reg x) {
    x = _mm256_min_ps(_mm256_max_ps(x, set1(-87.33654f)), set1(88.72283f));
    reg n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);  // x − n·ln2, ln2 split in two parts
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    reg p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, set1(1.f)));
    // 2^n for n in [−126, 128]: split in two factors so the exponent field never overflows.
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    reg a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    reg b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, a), b);
  }
  static float hmax(reg v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
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
  using f64x4 = F64x4Avx2;
  using half = Avx2;  // for rows 8 wide (MobileNet's 8×8 maps), which a 16-wide vector would straddle
  static __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg load_tail(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static reg load_masked(const float* p, const int32_t* on) {
    return _mm512_maskz_loadu_ps(_mm512_test_epi32_mask(_mm512_loadu_si512(on), _mm512_loadu_si512(on)), p);
  }
  static void store_tail(float* p, reg v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static reg gather(const float* base, const int32_t* idx) {
    return _mm512_i32gather_ps(_mm512_loadu_si512(idx), base, 4);
  }
  static reg shift_up(reg v, float in = 0.f) {
    return _mm512_mask_permutexvar_ps(set1(in), 0xFFFE,
                                      _mm512_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14), v);
  }
  static reg shift_down(reg v) {
    return _mm512_maskz_permutexvar_ps(0x7FFF, _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15), v);
  }
  static void deinterleave(reg a, reg b, reg& even, reg& odd) {
    even = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
    odd = _mm512_permutex2var_ps(a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
  }
  static void interleave(reg even, reg odd, reg& a, reg& b) {
    a = _mm512_permutex2var_ps(even, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), odd);
    b = _mm512_permutex2var_ps(even, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), odd);
  }
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
  static reg exp(reg x) {
    x = _mm512_min_ps(_mm512_max_ps(x, set1(-87.33654f)), set1(88.72283f));
    reg n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    reg p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, set1(1.f)));
    return _mm512_scalef_ps(p, n);  // p·2^n
  }
  static float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  static float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  static reg cmp_gt_select(reg a, reg b, reg x) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), x);
  }
};
#endif

}  // namespace shears::simd
