// Shape ops: reshape and flatten are storage-sharing views; transpose, permute, concat and
// slice copy into a new contiguous tensor (every tensor in shears is contiguous).
#include <algorithm>
#include <cstring>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/ops/loops.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(reshape);
SHEARS_REGISTER_OP(flatten);
SHEARS_REGISTER_OP(transpose);
SHEARS_REGISTER_OP(permute);
SHEARS_REGISTER_OP(concat);
SHEARS_REGISTER_OP(slice);

namespace {

Tensor view_op(const Tensor& x, const Shape& shape, const char* op) {
  profile::OpScope profile_scope(op);
  Tensor out = x.view(shape);
  Shape in_shape = x.shape();
  return record(out, op, {x}, [in_shape](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.view(in_shape)};
  });
}

Tensor permute_kernel(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape out_shape(dims.size());
  Shape in_strides = x.strides();
  Shape strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    out_shape[i] = x.shape()[dims[i]];
    strides[i] = in_strides[dims[i]];
  }
  Tensor out = Tensor::empty(out_shape);
  const float* px = x.data();
  float* po = out.data();
  for_each_index(out_shape, [&](int64_t i, const Shape& idx) {
    int64_t src = 0;
    for (size_t d = 0; d < idx.size(); ++d) src += idx[d] * strides[d];
    po[i] = px[src];
  });
  return out;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape resolved = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SHEARS_CHECK(infer < 0, "reshape", "only one dimension can be -1 in ", to_string(shape));
      infer = static_cast<int64_t>(i);
    } else {
      SHEARS_CHECK(shape[i] >= 0, "reshape", "invalid dimension ", shape[i], " in ", to_string(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    SHEARS_CHECK(known > 0 && x.numel() % known == 0, "reshape", "cannot reshape ", to_string(x.shape()),
                 " (", x.numel(), " elements) to ", to_string(shape));
    resolved[infer] = x.numel() / known;
  }
  SHEARS_CHECK(numel(resolved) == x.numel(), "reshape", "cannot reshape ", to_string(x.shape()), " (",
               x.numel(), " elements) to ", to_string(shape));
  return view_op(x, resolved, "reshape");
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return view_op(x, {1}, "flatten");
  int64_t s = normalize_dim(start_dim, x.dim(), "flatten");
  int64_t e = normalize_dim(end_dim, x.dim(), "flatten");
  SHEARS_CHECK(s <= e, "flatten", "start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= x.shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return view_op(x, shape, "flatten");
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  profile::OpScope profile_scope("permute");
  SHEARS_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute", "got ", dims.size(),
               " dimensions for a tensor of rank ", x.dim());
  std::vector<int64_t> order(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    order[i] = normalize_dim(dims[i], x.dim(), "permute");
    SHEARS_CHECK(!seen[order[i]], "permute", "dimension ", dims[i], " repeated");
    seen[order[i]] = true;
  }
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
  return record(permute_kernel(x, order), "permute", {x}, [inverse](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{permute_kernel(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> dims(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) dims[i] = i;
  std::swap(dims[normalize_dim(dim0, x.dim(), "transpose")], dims[normalize_dim(dim1, x.dim(), "transpose")]);
  return permute(x, dims);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  profile::OpScope profile_scope("concat");
  SHEARS_CHECK(!xs.empty(), "concat", "needs at least one tensor");
  int64_t d = normalize_dim(dim, xs[0].dim(), "concat");
  Shape out_shape = xs[0].shape();
  out_shape[d] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    Shape expect = xs[0].shape();
    expect[d] = xs[k].shape().size() > static_cast<size_t>(d) ? xs[k].shape()[d] : -1;
    SHEARS_CHECK(xs[k].shape() == expect, "concat", "tensor ", k, " has shape ", to_string(xs[k].shape()),
                 ", incompatible with ", to_string(xs[0].shape()), " along dimension ", dim);
    out_shape[d] += xs[k].shape()[d];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= out_shape[i];
  for (int64_t i = d + 1; i < static_cast<int64_t>(out_shape.size()); ++i) inner *= out_shape[i];
  Tensor out = Tensor::empty(out_shape);
  std::vector<int64_t> widths;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    int64_t w = x.shape()[d] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out.data() + o * out_shape[d] * inner + at, x.data() + o * w, sizeof(float) * w);
    widths.push_back(x.shape()[d]);
    at += w;
  }
  return record(out, "concat", xs, [d, widths](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (size_t k = 0; k < widths.size(); ++k) {
      grads.push_back(needs[k] ? slice(g, d, start, start + widths[k]) : Tensor());
      start += widths[k];
    }
    return grads;
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  profile::OpScope profile_scope("slice");
  int64_t d = normalize_dim(dim, x.dim(), "slice");
  int64_t len = x.shape()[d];
  SHEARS_CHECK(step > 0, "slice", "step must be positive, got ", step);
  // Python-style clamping of negative and out-of-range bounds.
  auto clampi = [len](int64_t i) { return std::clamp(i < 0 ? i + len : i, int64_t{0}, len); };
  start = clampi(start);
  end = std::max(clampi(end), start);
  int64_t count = (end - start + step - 1) / step;
  Shape out_shape = x.shape();
  out_shape[d] = count;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  Tensor out = Tensor::empty(out_shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < count; ++k)
      std::memcpy(out.data() + (o * count + k) * inner, x.data() + (o * len + start + k * step) * inner,
                  sizeof(float) * inner);
  Shape in_shape = x.shape();
  return record(out, "slice", {x}, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::zeros(in_shape);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < count; ++k)
        std::memcpy(gx.data() + (o * len + start + k * step) * inner, g.data() + (o * count + k) * inner,
                    sizeof(float) * inner);
    return std::vector<Tensor>{gx};
  });
}

}  // namespace shears
