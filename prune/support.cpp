#include "prune/support.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"

namespace shears::prune {

std::vector<uint8_t> top_k_by_score(const std::vector<double>& score, int64_t k) {
  const auto p = static_cast<int64_t>(score.size());
  SHEARS_CHECK(k >= 0 && k <= p, "top_k", "k must be in [0, ", p, "], got ", k);
  for (double s : score) SHEARS_CHECK(!std::isnan(s), "top_k", "NaN score");
  std::vector<uint8_t> keep(p, 0);
  if (k == 0) return keep;
  std::vector<int64_t> order(p);
  std::iota(order.begin(), order.end(), int64_t{0});
  // A strict total order (score descending, then index ascending): the first k are exactly the kept.
  auto before = [&](int64_t a, int64_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), before);
  for (int64_t i = 0; i < k; ++i) keep[order[i]] = 1;
  return keep;
}

std::vector<uint8_t> top_k_support(const std::vector<double>& x, int64_t k) {
  std::vector<double> magnitude(x.size());
  for (size_t i = 0; i < x.size(); ++i) magnitude[i] = std::abs(x[i]);
  return top_k_by_score(magnitude, k);
}

std::vector<double> masked(const std::vector<double>& x, const std::vector<uint8_t>& support) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = support[i] ? x[i] : 0.0;
  return out;
}

double support_overlap(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int64_t k) {
  int64_t both = 0;
  for (size_t i = 0; i < a.size(); ++i) both += a[i] && b[i];
  return k ? static_cast<double>(both) / static_cast<double>(k) : 1.0;
}

std::vector<double> hard_threshold(const std::vector<double>& x, int64_t k) { return masked(x, top_k_support(x, k)); }

}  // namespace shears::prune
