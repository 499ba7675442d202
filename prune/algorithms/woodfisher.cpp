// WoodFisher (docs/algorithms/swap.md#woodfisher); see woodfisher.hpp for the layout and the departures.
#include "prune/algorithms/woodfisher.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/blas.hpp"
#include "core/error.hpp"
#include "prune/support.hpp"

namespace shears::prune {
namespace {

// The inverse (float32, m × m) of S (symmetric positive definite, float64), by Cholesky.
std::vector<float> spd_inverse(std::vector<double> S, int64_t m) {
  for (int64_t j = 0; j < m; ++j) {
    double d = S[j * m + j];
    for (int64_t l = 0; l < j; ++l) d -= S[j * m + l] * S[j * m + l];
    SHEARS_CHECK(d > 0, "woodfisher", "the Woodbury system is not positive definite (pivot ", d,
                 "); hint: raise the damping");
    S[j * m + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < m; ++i) {
      double s = S[i * m + j];
      for (int64_t l = 0; l < j; ++l) s -= S[i * m + l] * S[j * m + l];
      S[i * m + j] = s / S[j * m + j];
    }
  }
  std::vector<float> inv(static_cast<size_t>(m * m));
  std::vector<double> x(m);
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t i = 0; i < m; ++i) {  // L x = e_c
      double s = i == c ? 1.0 : 0.0;
      for (int64_t l = 0; l < i; ++l) s -= S[i * m + l] * x[l];
      x[i] = s / S[i * m + i];
    }
    for (int64_t i = m - 1; i >= 0; --i) {  // Lᵀ x = x
      double s = x[i];
      for (int64_t l = i + 1; l < m; ++l) s -= S[l * m + i] * x[l];
      x[i] = s / S[i * m + i];
    }
    for (int64_t i = 0; i < m; ++i) inv[i * m + c] = static_cast<float>(x[i]);
  }
  return inv;
}

// The block inverse with the columns of inactive entries zeroed (the reference masks the
// gradients of pruned weights, so they decouple: their row and column of F⁻¹ are e_q/δ).
std::vector<float> block_inverse(const Tensor& G, int64_t begin, int64_t size, const uint8_t* active,
                                 const WoodFisherOptions& o) {
  const int64_t n = G.size(0), p = G.size(1);
  std::vector<float> inv(static_cast<size_t>(size * size), 0.f);
  for (int64_t q = 0; q < size; ++q) inv[q * size + q] = static_cast<float>(1.0 / o.damp);
  std::vector<float> A, W, X, S32;
  std::vector<double> S;
  for (int64_t i0 = 0; i0 < n; i0 += o.chunk) {
    const int64_t m = std::min(o.chunk, n - i0);
    A.assign(static_cast<size_t>(m * size), 0.f);  // U ᵀ: the chunk's gradients on the block
    for (int64_t i = 0; i < m; ++i) {
      const float* row = G.data() + (i0 + i) * p + begin;
      for (int64_t q = 0; q < size; ++q) A[i * size + q] = (!active || active[q]) ? row[q] : 0.f;
    }
    W.resize(static_cast<size_t>(m * size));  // A F⁻¹ = (F⁻¹ U)ᵀ, F⁻¹ symmetric
    blas::sgemm(false, false, m, size, size, 1.f, A.data(), size, inv.data(), size, 0.f, W.data(), size);
    S32.resize(static_cast<size_t>(m * m));  // Uᵀ F⁻¹ U
    blas::sgemm(false, true, m, m, size, 1.f, W.data(), size, A.data(), size, 0.f, S32.data(), m);
    S.assign(static_cast<size_t>(m * m), 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j)
        S[i * m + j] = 0.5 * (static_cast<double>(S32[i * m + j]) + S32[j * m + i]) + (i == j ? n : 0.0);
    std::vector<float> S_inv = spd_inverse(S, m);
    X.resize(static_cast<size_t>(m * size));  // (nI + UᵀF⁻¹U)⁻¹ UᵀF⁻¹
    blas::sgemm(false, false, m, size, m, 1.f, S_inv.data(), m, W.data(), size, 0.f, X.data(), size);
    blas::sgemm(true, false, size, size, m, -1.f, W.data(), size, X.data(), size, 1.f, inv.data(), size);
  }
  return inv;
}

void check_options(const WoodFisherOptions& o) {
  SHEARS_CHECK(o.block >= 1 && o.chunk >= 1, "woodfisher", "block and chunk must be positive, got ", o.block, " and ",
               o.chunk);
  SHEARS_CHECK(o.damp > 0 && std::isfinite(o.damp), "woodfisher", "the damping must be positive, got ", o.damp);
}

}  // namespace

std::vector<float> woodfisher_block_inverse(const Tensor& G, int64_t begin, int64_t size,
                                            const WoodFisherOptions& options) {
  check_options(options);
  SHEARS_CHECK(G.dim() == 2 && begin >= 0 && size >= 1 && begin + size <= G.size(1), "woodfisher",
               "block [", begin, ", ", begin + size, ") outside the ", G.dim() == 2 ? G.size(1) : 0, " columns of G");
  return block_inverse(G, begin, size, nullptr, options);
}

WoodFisherResult woodfisher_stage(const Tensor& G, const std::vector<double>& w, const std::vector<uint8_t>& active,
                                  const std::vector<int64_t>& tensor_sizes, int64_t k,
                                  const WoodFisherOptions& options) {
  check_options(options);
  const auto p = static_cast<int64_t>(w.size());
  SHEARS_CHECK(G.dim() == 2 && G.size(1) == p && active.size() == w.size(), "woodfisher",
               "G has shape ", to_string(G.shape()), " for ", p, " weights and ", active.size(), " mask entries");
  int64_t total = 0;
  for (int64_t s : tensor_sizes) total += s;
  SHEARS_CHECK(total == p, "woodfisher", "the tensor sizes add up to ", total, ", not ", p);
  const int64_t alive = std::count(active.begin(), active.end(), uint8_t{1});
  SHEARS_CHECK(k >= 0 && k <= alive, "woodfisher", "cannot keep ", k, " of ", alive, " unpruned entries");

  WoodFisherResult r;
  r.saliency.assign(p, -std::numeric_limits<double>::infinity());
  std::vector<int64_t> starts, lengths;
  for (int64_t offset = 0; int64_t s : tensor_sizes) {
    for (int64_t b = 0; b < s; b += options.block) {
      starts.push_back(offset + b);
      lengths.push_back(std::min(options.block, s - b));
    }
    offset += s;
  }
  std::vector<std::vector<float>> kept;  // the block inverses, for the weight correction
  for (size_t b = 0; b < starts.size(); ++b) {
    const int64_t begin = starts[b], size = lengths[b];
    std::vector<float> inv = block_inverse(G, begin, size, active.data() + begin, options);
    for (int64_t q = 0; q < size; ++q)
      if (active[begin + q]) {
        double theta = w[begin + q];
        r.saliency[begin + q] = theta * theta / (2.0 * inv[q * size + q]);
      }
    if (options.update_weights) kept.push_back(std::move(inv));
  }
  r.support = top_k_by_score(r.saliency, k);
  r.w = w;
  if (options.update_weights) {
    for (size_t b = 0; b < starts.size(); ++b) {
      const int64_t begin = starts[b], size = lengths[b];
      const std::vector<float>& inv = kept[b];
      std::vector<double> v(size, 0.0);  // θ_q / [F⁻¹]_qq on the newly pruned entries
      bool any = false;
      for (int64_t q = 0; q < size; ++q)
        if (active[begin + q] && !r.support[begin + q]) {
          v[q] = w[begin + q] / inv[q * size + q];
          any = true;
        }
      if (!any) continue;
      for (int64_t i = 0; i < size; ++i) {
        double s = 0.0;
        for (int64_t q = 0; q < size; ++q) s += static_cast<double>(inv[i * size + q]) * v[q];
        r.w[begin + i] -= s;
      }
    }
  }
  for (int64_t i = 0; i < p; ++i)
    if (!r.support[i]) r.w[i] = 0.0;
  return r;
}

}  // namespace shears::prune
