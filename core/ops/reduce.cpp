// Reductions: sum, mean and max over dimensions or everything, and sum_to (the backward of
// broadcasting). Kernels view the input as (outer, reduced, inner) blocks when the reduced
// dimensions are adjacent, and fall back to index arithmetic otherwise.
#include <algorithm>
#include <limits>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/ops/loops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(sum);
SHEARS_REGISTER_OP(mean);
SHEARS_REGISTER_OP(max);

int64_t normalize_dim(int64_t dim, int64_t rank, const char* op) {
  SHEARS_CHECK(dim >= -rank && dim < std::max<int64_t>(rank, 1), op, "dimension ", dim,
               " out of range for a tensor of rank ", rank);
  return dim < 0 ? dim + rank : dim;
}

namespace {

std::vector<bool> reduced_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) {
    int64_t nd = normalize_dim(d, x.dim(), op);
    SHEARS_CHECK(!reduced[nd], op, "dimension ", d, " appears twice in the reduction list");
    reduced[nd] = true;
  }
  return reduced;
}

Shape keepdim_shape(const Shape& shape, const std::vector<bool>& reduced) {
  Shape out = shape;
  for (size_t d = 0; d < shape.size(); ++d)
    if (reduced[d]) out[d] = 1;
  return out;
}

Shape squeezed_shape(const Shape& shape, const std::vector<bool>& reduced) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d)
    if (!reduced[d]) out.push_back(shape[d]);
  return out;
}

// Output offset of every input element: strides of the keepdim output, 0 along reduced dims.
Shape reduce_strides(const Shape& shape, const std::vector<bool>& reduced) {
  Shape strides = contiguous_strides(keepdim_shape(shape, reduced));
  for (size_t d = 0; d < shape.size(); ++d)
    if (reduced[d]) strides[d] = 0;
  return strides;
}

// The common layouts collapse to (A, B, C) with A and C reduced and B kept (a bias gradient
// sums (N, C, H, W) over {0, 2, 3}: A = N, B = C, C = H·W); returns false for other layouts.
bool collapse_outer_kept_inner(const Shape& shape, const std::vector<bool>& reduced, int64_t& A, int64_t& B,
                               int64_t& C) {
  A = B = C = 1;
  int phase = 0;  // 0: leading reduced dims, 1: kept dims, 2: trailing reduced dims
  for (size_t d = 0; d < shape.size(); ++d) {
    if (phase == 0 && !reduced[d]) phase = 1;
    if (phase == 1 && reduced[d]) phase = 2;
    if (phase == 2 && !reduced[d]) return false;
    (phase == 0 ? A : phase == 1 ? B : C) *= shape[d];
  }
  return true;
}

// Sum over the reduced dims into a keepdim-shaped tensor (double accumulation).
Tensor sum_kernel_ref(const Tensor& x, const std::vector<bool>& reduced) {
  Shape out_shape = keepdim_shape(x.shape(), reduced);
  std::vector<double> acc(numel(out_shape), 0.0);
  const float* px = x.data();
  Shape strides = reduce_strides(x.shape(), reduced);
  for_each_index(x.shape(), [&](int64_t i, const Shape& idx) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[d];
    acc[o] += px[i];
  });
  Tensor out = Tensor::empty(out_shape);
  for (size_t i = 0; i < acc.size(); ++i) out.data()[i] = static_cast<float>(acc[i]);
  return out;
}

Tensor sum_kernel(const Tensor& x, const std::vector<bool>& reduced) {
  int64_t A, B, C;
  if (!collapse_outer_kept_inner(x.shape(), reduced, A, B, C)) return sum_kernel_ref(x, reduced);
  Tensor out = Tensor::empty(keepdim_shape(x.shape(), reduced));
  const float* px = x.data();
  float* po = out.data();
  const kernels::Table& k = kernels::kernels();
  parallel_for(B, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, A * C)), [&](int64_t b0, int64_t b1) {
    if (C > 1) {
      for (int64_t b = b0; b < b1; ++b) {
        double total = 0.0;
        for (int64_t a = 0; a < A; ++a) total += k.sum(px + (a * B + b) * C, C);
        po[b] = static_cast<float>(total);
      }
      return;
    }
    std::vector<double> acc(b1 - b0, 0.0);  // rows of B summed over A
    for (int64_t a = 0; a < A; ++a) {
      const float* row = px + a * B;
      for (int64_t b = b0; b < b1; ++b) acc[b - b0] += row[b];
    }
    for (int64_t b = b0; b < b1; ++b) po[b] = static_cast<float>(acc[b - b0]);
  });
  return out;
}

// Broadcasts a keepdim-shaped gradient back over the reduced dims of `shape`, times scale.
Tensor expand_kernel(const Tensor& g, const Shape& shape, const std::vector<bool>& reduced, float scale) {
  Tensor out = Tensor::empty(shape);
  const float* pg = g.data();
  float* po = out.data();
  int64_t A, B, C;
  if (collapse_outer_kept_inner(shape, reduced, A, B, C)) {
    parallel_for(A * B, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, C)), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) std::fill(po + i * C, po + (i + 1) * C, pg[i % B] * scale);
    });
    return out;
  }
  Shape strides = reduce_strides(shape, reduced);
  for_each_index(shape, [&](int64_t i, const Shape& idx) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[d];
    po[i] = pg[o] * scale;
  });
  return out;
}

Tensor reduce_sum(const Tensor& x, const std::vector<bool>& reduced, bool keepdim, float scale, const char* op) {
  profile::OpScope profile_scope(op);
  Tensor out = sum_kernel(x, reduced);
  if (scale != 1.f)
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] *= scale;
  Shape keep_shape = out.shape();
  if (!keepdim) out = out.view(squeezed_shape(x.shape(), reduced));
  Shape in_shape = x.shape();
  return record(out, op, {x}, [in_shape, keep_shape, reduced, scale](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{expand_kernel(g.view(keep_shape), in_shape, reduced, scale)};
  });
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_sum(x, std::vector<bool>(x.dim(), true), false, 1.f, "sum"); }

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_sum(x, reduced_mask(x, dims, "sum"), keepdim, 1.f, "sum");
}

Tensor mean(const Tensor& x) {
  SHEARS_CHECK(x.numel() > 0, "mean", "mean of an empty tensor");
  return reduce_sum(x, std::vector<bool>(x.dim(), true), false, 1.f / static_cast<float>(x.numel()), "mean");
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<bool> reduced = reduced_mask(x, dims, "mean");
  int64_t count = 1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (reduced[d]) count *= x.shape()[d];
  SHEARS_CHECK(count > 0, "mean", "mean over an empty dimension of shape ", to_string(x.shape()));
  return reduce_sum(x, reduced, keepdim, 1.f / static_cast<float>(count), "mean");
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  SHEARS_CHECK(shape.size() <= x.shape().size(), "sum_to", "cannot sum shape ", to_string(x.shape()),
               " to ", to_string(shape));
  size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < x.shape().size(); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
      continue;
    }
    int64_t target = shape[d - lead];
    SHEARS_CHECK(target == x.shape()[d] || target == 1, "sum_to", "cannot sum shape ", to_string(x.shape()),
                 " to ", to_string(shape));
    if (target == 1 && x.shape()[d] != 1) dims.push_back(static_cast<int64_t>(d));
  }
  return reshape(sum(x, dims, true), shape);
}

// Values and the flat index of the first maximum along one dimension.
Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  profile::OpScope profile_scope("max");
  int64_t d = normalize_dim(dim, x.dim(), "max");
  SHEARS_CHECK(x.dim() > 0 && x.shape()[d] > 0, "max", "cannot take max over an empty dimension of shape ",
               to_string(x.shape()));
  int64_t outer = 1, inner = 1, len = x.shape()[d];
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  std::vector<bool> reduced(x.dim(), false);
  reduced[d] = true;
  Shape keep_shape = keepdim_shape(x.shape(), reduced);
  Tensor out = Tensor::empty(keep_shape);
  auto argmax = std::make_shared<std::vector<int64_t>>(outer * inner);
  const float* px = x.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = o * len * inner + i;
      for (int64_t k = 1; k < len; ++k) {
        int64_t at = (o * len + k) * inner + i;
        if (px[at] > px[best]) best = at;
      }
      out.data()[o * inner + i] = px[best];
      (*argmax)[o * inner + i] = best;
    }
  if (!keepdim) out = out.view(squeezed_shape(x.shape(), reduced));
  Shape in_shape = x.shape();
  return record(out, "max", {x}, [in_shape, argmax](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::zeros(in_shape);
    for (size_t i = 0; i < argmax->size(); ++i) gx.data()[(*argmax)[i]] += g.data()[i];
    return std::vector<Tensor>{gx};
  });
}

Tensor max(const Tensor& x) {
  SHEARS_CHECK(x.numel() > 0, "max", "max of an empty tensor");
  return reshape(max(reshape(x, {x.numel()}), 0, false), {});
}

}  // namespace shears
