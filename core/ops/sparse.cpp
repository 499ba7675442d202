// sparse_linear and sparse_conv2d: linear and conv2d over a weight's kept entries only
// (core/sparse.hpp), forward and backward side by side:
//   y = x·Wᵀ + b     dx = dy·W (Wᵀ's rows),  dW[kept] = (dyᵀ·x)[kept],  db = Σ_rows dy
// Values come from `weight` when it is defined (fine-tuning: its gradient is formed at the kept
// entries only, zero elsewhere), else from the sparse form itself (inference without the dense
// copy). The kernels run along the batch (Linear, x transposed to (in, N)) or the pixels (conv).
#include "core/sparse.hpp"

#include <memory>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/kernels/conv.hpp"
#include "core/ops.hpp"
#include "core/ops/conv2d.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

SHEARS_REGISTER_OP(sparse_linear);
SHEARS_REGISTER_OP(sparse_conv2d);

namespace {

// Batches of fewer rows than this run one sparse matrix-vector product per row (no transposes);
// larger ones transpose x once and run the tiled kernel along the batch.
constexpr int64_t kVectorRows = 4;

// at (cols, rows) = aᵀ for a (rows, cols), bands of rows split over the pool.
void transpose_into(const float* a, int64_t rows, int64_t cols, float* at) {
  const kernels::Table& k = kernels::kernels();
  parallel_for((rows + 7) / 8, 8, [&](int64_t b0, int64_t b1) {
    const int64_t r0 = b0 * 8, r1 = std::min(rows, b1 * 8);
    k.transpose(a + r0 * cols, cols, r1 - r0, cols, at + r0, rows);
  });
}

// Columns of the tiled kernel's panels: x's rows are cut into panels of this many columns, each
// laid out contiguously (cols × kPanel), so a panel streams through the cache without the set
// conflicts of rows a power of two apart.
constexpr int64_t kPanel = 64;

// panels[q] (cols, width_q) = the columns [q·kPanel, …) of aᵀ, for a (rows, cols).
void transpose_into_panels(const float* a, int64_t rows, int64_t cols, float* panels) {
  const kernels::Table& k = kernels::kernels();
  parallel_for((rows + 7) / 8, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t r = b0 * 8; r < std::min(rows, b1 * 8); r += 8) {
      const int64_t r0 = r / kPanel * kPanel, width = std::min(kPanel, rows - r0);
      k.transpose(a + r * cols, cols, std::min<int64_t>(8, rows - r), cols, panels + r0 * cols + (r - r0), width);
    }
  });
}

// y (rows, m.rows) = x (rows, m.cols) · mᵀ, m's rows split over the pool.
void rows_times_sparse_t(const CsrMatrix& m, const float* x, int64_t rows, float* y) {
  const kernels::Table& k = kernels::kernels();
  const kernels::CsrRows w = m.view();
  if (rows < kVectorRows) {
    for (int64_t r = 0; r < rows; ++r)
      parallel_for(m.rows, 64,
                   [&](int64_t o0, int64_t o1) { k.csr_times_vector(w, o0, o1, x + r * m.cols, y + r * m.rows); });
    return;
  }
  // Scratch from the tensor allocator, which keeps large blocks (no fresh pages each call).
  Tensor panels = Tensor::empty({m.cols * rows}), yt = Tensor::empty({m.rows * rows});
  transpose_into_panels(x, rows, m.cols, panels.data());
  parallel_for(m.rows, 16, [&](int64_t o0, int64_t o1) {
    for (int64_t r0 = 0; r0 < rows; r0 += kPanel) {
      const int64_t width = std::min(kPanel, rows - r0);
      k.csr_times_dense(w, o0, o1, panels.data() + r0 * m.cols, width, width, yt.data() + r0, rows, false);
    }
  });
  transpose_into(yt.data(), m.rows, rows, y);
}

// dW at the kept entries, scattered into a zero (out, in) gradient: dv[j] = Σ_n dy[n][r]·x[n][c].
Tensor kept_weight_gradient(const SparseWeight& s, const float* dy, const float* x, int64_t rows) {
  const CsrMatrix& m = s.w();
  Tensor dyt = Tensor::empty({m.rows * rows}), xt = Tensor::empty({m.cols * rows}), dv = Tensor::zeros({m.nnz()});
  transpose_into(dy, rows, m.rows, dyt.data());
  transpose_into(x, rows, m.cols, xt.data());
  const kernels::Table& k = kernels::kernels();
  parallel_for(m.rows, 16, [&](int64_t o0, int64_t o1) {
    k.csr_sampled_dots(m.view(), o0, o1, dyt.data(), rows, xt.data(), rows, rows, dv.data());
  });
  Tensor dw = Tensor::zeros(s.shape());
  s.scatter(dv.data(), dw.data());
  return dw;
}

// The form's values, refreshed from the dense weight when there is one.
void refresh(SparseWeight& s, const Tensor& weight, const char* op) {
  if (!weight.defined()) return;
  SHEARS_CHECK(weight.shape() == s.shape(), op, "weight ", to_string(weight.shape()),
               " does not match its sparse form ", to_string(s.shape()),
               " (sparsify again after changing the weight's shape)");
  s.gather(weight.data());
}

}  // namespace

Tensor sparse_linear(const Tensor& x, const Tensor& weight, const std::shared_ptr<SparseWeight>& sparse,
                     const Tensor& bias) {
  profile::OpScope profile_scope("sparse_linear");
  SHEARS_CHECK(sparse && sparse->shape().size() == 2, "sparse_linear", "needs the sparse form of a 2-d weight");
  refresh(*sparse, weight, "sparse_linear");
  const int64_t out_f = sparse->shape()[0], in_f = sparse->shape()[1];
  SHEARS_CHECK(x.dim() >= 1 && x.size(-1) == in_f, "sparse_linear", "input has shape ", to_string(x.shape()),
               ", expected last dimension ", in_f);
  SHEARS_CHECK(!bias.defined() || bias.shape() == Shape{out_f}, "sparse_linear", "bias must be [", out_f, "]");
  const int64_t rows = x.numel() / in_f;
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = Tensor::empty(out_shape);
  profile_scope.add_flops(2.0 * rows * sparse->nnz());
  rows_times_sparse_t(sparse->w(), x.data(), rows, out.data());
  if (bias.defined())
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_f; ++o) out.data()[r * out_f + o] += bias.data()[o];
  Tensor xs = x.detach();
  return record(out, "sparse_linear", {x, weight, bias}, [=](const Tensor& g, const std::vector<bool>& needs) {
    Tensor gx, gw, gb;
    if (needs[0]) {
      gx = Tensor::empty(xs.shape());
      rows_times_sparse_t(sparse->wt(), g.data(), rows, gx.data());
    }
    if (needs[1]) gw = kept_weight_gradient(*sparse, g.data(), xs.data(), rows);
    if (needs[2]) gb = sum_to(g.view({rows, out_f}), {out_f});
    return std::vector<Tensor>{gx, gw, gb};
  });
}

Tensor sparse_conv2d(const Tensor& x, const Tensor& weight, const std::shared_ptr<SparseWeight>& sparse,
                     const Tensor& bias, const Conv2dOptions& opt) {
  profile::OpScope profile_scope("sparse_conv2d");
  SHEARS_CHECK(sparse && sparse->shape().size() == 4, "sparse_conv2d", "needs the sparse form of a 4-d weight");
  refresh(*sparse, weight, "sparse_conv2d");
  const ConvGeometry g = conv_geometry(x.shape(), sparse->shape(), opt);
  SHEARS_CHECK(g.groups == 1, "sparse_conv2d", "grouped and depthwise convolutions stay dense (groups ", g.groups, ")");
  SHEARS_CHECK(!bias.defined() || bias.shape() == Shape{g.C_out}, "sparse_conv2d", "bias must be [", g.C_out, "]");
  Tensor y = Tensor::empty({g.N, g.C_out, g.H_out, g.W_out});
  profile_scope.add_flops(static_cast<double>(g.gemm_flops()) * sparse->density());
  profile_scope.set_path(sparse_conv_path(g));
  sparse_conv2d_forward(g, sparse->w().view(), x.data(), bias.defined() ? bias.data() : nullptr, y.data());
  Tensor xs = x.detach();
  return record(y, "sparse_conv2d", {x, weight, bias}, [=](const Tensor& dy, const std::vector<bool>& needs) {
    Tensor dx, dw, db;
    if (needs[0]) {
      dx = Tensor::empty(xs.shape());
      sparse_conv2d_backward_input(g, sparse->w().view(), sparse->wt().view(), dy.data(), dx.data());
    }
    if (needs[1]) {
      std::vector<float> dv(sparse->nnz());
      sparse_conv2d_backward_weight(g, sparse->w().view(), sparse->nnz(), dy.data(), xs.data(), dv.data());
      dw = Tensor::zeros(sparse->shape());
      sparse->scatter(dv.data(), dw.data());
    }
    if (needs[2]) db = sum(dy, {0, 2, 3});
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace shears
