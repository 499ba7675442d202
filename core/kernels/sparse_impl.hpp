// Sparse-weight kernels over a SIMD vocabulary V, included by kernels_impl.hpp (same rules: one
// namespace per ISA, no standard library templates). Vectors run along the dense operand's
// columns (a Linear's batch, a convolution's pixels), as the fast sparse ConvNet kernels do: a
// row's accumulators stay in registers while its entries stream by, one broadcast each.
#pragma once

namespace shears::kernels::SHEARS_KERNEL_NS {

// Vectors per tile of y's columns: four accumulators hide the FMA latency.
constexpr int kSparseTile = 4;

// y[r][p0, p0 + T·width) for rows [r0, r1); Full: every vector of the tile lies inside P.
template <typename V, int T, bool Full>
inline void csr_tile(const CsrRows& w, int64_t r0, int64_t r1, const float* x, int64_t ldx, int64_t p0, int64_t P,
                     float* y, int64_t ldy, bool accumulate) {
  int lanes[T];
  for (int t = 0; t < T; ++t) lanes[t] = Full ? V::width : lanes_within<V>(p0 + t * V::width, P);
  for (int64_t r = r0; r < r1; ++r) {
    typename V::reg acc[T];
    for (int t = 0; t < T; ++t) acc[t] = accumulate ? load_n<V>(y + r * ldy + p0 + t * V::width, lanes[t]) : V::zero();
    for (int64_t j = w.row_begin[r]; j < w.row_end[r]; ++j) {
      const auto v = V::set1(w.values[j]);
      const float* xr = x + w.col[j] * ldx + p0;
      for (int t = 0; t < T; ++t)
        acc[t] = V::fma(v, Full ? V::load(xr + t * V::width) : load_n<V>(xr + t * V::width, lanes[t]), acc[t]);
    }
    for (int t = 0; t < T; ++t) store_n<V>(y + r * ldy + p0 + t * V::width, acc[t], lanes[t]);
  }
}

template <typename V>
void csr_times_dense(const CsrRows& w, int64_t r0, int64_t r1, const float* x, int64_t ldx, int64_t P, float* y,
                     int64_t ldy, bool accumulate) {
  constexpr int64_t tile = kSparseTile * V::width;
  int64_t p0 = 0;
  for (; p0 + tile <= P; p0 += tile) csr_tile<V, kSparseTile, true>(w, r0, r1, x, ldx, p0, P, y, ldy, accumulate);
  for (; p0 < P; p0 += V::width) csr_tile<V, 1, false>(w, r0, r1, x, ldx, p0, P, y, ldy, accumulate);
}

template <typename V>
void csr_times_vector(const CsrRows& w, int64_t r0, int64_t r1, const float* x, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t j = w.row_begin[r];
    const int64_t end = w.row_end[r];
    auto acc = V::zero();
    for (; j + V::width <= end; j += V::width) acc = V::fma(V::load(w.values + j), V::gather(x, w.col + j), acc);
    float sum = V::hsum(acc);
    for (; j < end; ++j) sum += w.values[j] * x[w.col[j]];
    y[r] = sum;
  }
}

template <typename V>
void csr_sampled_dots(const CsrRows& w, int64_t r0, int64_t r1, const float* dy, int64_t lddy, const float* x,
                      int64_t ldx, int64_t P, float* dv) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t j = w.row_begin[r]; j < w.row_end[r]; ++j) {
      const float *g = dy + r * lddy, *xr = x + w.col[j] * ldx;
      auto acc = V::zero();
      for_each_vector<V>(
          P, [&](int64_t p, int lanes) { acc = V::fma(load_n<V>(g + p, lanes), load_n<V>(xr + p, lanes), acc); });
      dv[j] += V::hsum(acc);
    }
}

#if defined(__AVX2__)
// b (8 rows, ldb apart) = aᵀ of the 8×8 block at a (rows lda apart), through registers.
inline void transpose8x8(const float* a, int64_t lda, float* b, int64_t ldb) {
  __m256 r[8], t[8], s[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(a + i * lda);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(b + i * ldb, _mm256_permute2f128_ps(s[i], s[i + 4], 0x20));
    _mm256_storeu_ps(b + (i + 4) * ldb, _mm256_permute2f128_ps(s[i], s[i + 4], 0x31));
  }
}
#endif

template <typename V>
void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* b, int64_t ldb) {
  int64_t r8 = 0, c8 = 0;
#if defined(__AVX2__)
  if constexpr (V::width >= 8) {
    r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t r = 0; r < r8; r += 8)
      for (int64_t c = 0; c < c8; c += 8) transpose8x8(a + r * lda + c, lda, b + c * ldb + r, ldb);
  }
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = r < r8 ? c8 : 0; c < cols; ++c) b[c * ldb + r] = a[r * lda + c];
}

}  // namespace shears::kernels::SHEARS_KERNEL_NS
