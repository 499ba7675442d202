// batch_norm kernels over x seen as (N, C, L), exposed for tests and benchmarks.
#pragma once
#include <cstdint>

namespace shears {

struct BnShape {
  int64_t N, C, L;
};

// Per-channel mean and biased variance (two passes: mean, then Σ(x − mean)²).
void batch_norm_stats(const BnShape& s, const float* x, float* mean, float* var);
void batch_norm_stats_ref(const BnShape& s, const float* x, float* mean, float* var);

// y = x·scale[c] + shift[c].
void batch_norm_apply(const BnShape& s, const float* x, const float* scale, const float* shift, float* y);
void batch_norm_apply_ref(const BnShape& s, const float* x, const float* scale, const float* shift, float* y);

// From dy: dgamma = Σ dy·x̂, dbeta = Σ dy and, when dx is not null,
//   training: dx = γ·rstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M);  eval: dx = γ·rstd·dy.
// gamma may be null (1); dgamma/dbeta may be null.
void batch_norm_backward(const BnShape& s, const float* x, const float* dy, const float* mean, const float* rstd,
                         const float* gamma, bool training, float* dx, float* dgamma, float* dbeta);
void batch_norm_backward_ref(const BnShape& s, const float* x, const float* dy, const float* mean,
                             const float* rstd, const float* gamma, bool training, float* dx, float* dgamma,
                             float* dbeta);

}  // namespace shears
