// WoodFisher — Optimal-Brain-Surgeon pruning with a block-diagonal empirical Fisher (Singh &
// Alistarh, NeurIPS 2020), the baseline of SWAP's paper. Documented in
// docs/algorithms/swap.md#woodfisher; G as in docs/algorithms/swap.md#per-sample-gradients.
//
// For the per-sample gradients G (n × p) the empirical Fisher is F = δI + GᵀG/n. It is
// approximated block-diagonally: each tensor of the flat weight vector is cut into blocks of B
// consecutive entries (the last block of a tensor may be shorter; blocks never span two tensors,
// as in the reference's per-layer blocks). The inverse of each block is built by the Woodbury
// recursion starting from I/δ, F_i⁻¹ = F_{i−1}⁻¹ − F_{i−1}⁻¹ g_i g_iᵀ F_{i−1}⁻¹ /
// (n + g_iᵀ F_{i−1}⁻¹ g_i), applied `chunk` samples at a time: the rank-m form
// F⁻¹ − F⁻¹U (nI + UᵀF⁻¹U)⁻¹ UᵀF⁻¹ equals m successive rank-one steps and runs as sgemm (float32,
// like the reference; the m × m system is solved in float64). Cost O(n·B) per weight, memory B²
// floats per block.
//
// Saliency ρ_q = θ_q² / (2[F⁻¹]_qq), the lowest pruned; entries already pruned stay pruned. With
// update_weights the surviving weights get the OBS correction of the newly pruned set Q under the
// independent-sum approximation (the reference's "joint" option): δθ = −Σ_{q∈Q} θ_q/[F⁻¹]_qq ·
// F⁻¹e_q, block by block, then the pruned entries are zeroed; the block inverses are then kept
// until the ranking is done (memory p·B floats).
//
// Departures from the reference (CBS pruners/woodfisher.py): its saliency adds 1e-10 to the
// diagonal and the score (same ranking here up to ties); ties are broken as H_k (lower index kept).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace shears::prune {

struct WoodFisherOptions {
  int64_t block = 1000;        // B
  double damp = 1e-3;          // δ
  bool update_weights = true;  // the OBS correction of the surviving weights (the reference's default)
  int64_t chunk = 64;          // samples per Woodbury update
};

// The B × B inverse (row-major) of δI + G_bᵀG_b/n, G_b the columns [begin, begin + size) of G.
std::vector<float> woodfisher_block_inverse(const Tensor& G, int64_t begin, int64_t size,
                                            const WoodFisherOptions& options);

struct WoodFisherResult {
  std::vector<double> w;          // weights after pruning (and the correction), zero off the support
  std::vector<uint8_t> support;   // exactly k ones
  std::vector<double> saliency;   // ρ, −∞ where `active` is 0
};

// Keeps the k most salient entries of w among those with active = 1 (k must not exceed their
// count). tensor_sizes: the lengths of the tensors laid end to end in w (their sum is p).
WoodFisherResult woodfisher_stage(const Tensor& G, const std::vector<double>& w, const std::vector<uint8_t>& active,
                                  const std::vector<int64_t>& tensor_sizes, int64_t k,
                                  const WoodFisherOptions& options);

}  // namespace shears::prune
