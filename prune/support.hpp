// Supports of k entries over a flat vector of weights: the top-k selections and hard thresholding
// that SWAP, LR, WoodFisher and gradual magnitude pruning share. Ties keep the lower index, so a
// selection depends on the values only.
#pragma once
#include <cstdint>
#include <vector>

namespace shears::prune {

// The mask of the k largest scores (ties: lower index kept), by nth_element.
std::vector<uint8_t> top_k_by_score(const std::vector<double>& score, int64_t k);
// H_k: the mask of the k entries of largest |x| (ties: lower index), and x on that mask.
std::vector<uint8_t> top_k_support(const std::vector<double>& x, int64_t k);
std::vector<double> hard_threshold(const std::vector<double>& x, int64_t k);
// x on the mask, 0 elsewhere; |a ∩ b| / k for two masks of k entries (1 when k = 0).
std::vector<double> masked(const std::vector<double>& x, const std::vector<uint8_t>& support);
double support_overlap(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int64_t k);

}  // namespace shears::prune
