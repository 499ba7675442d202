// Sparse weights: the kept entries of a Linear's weight (out, in), or of a Conv2d's (out, in, kH,
// kW) seen as (out, in·kH·kW), in compressed rows (CSR, PyTorch's sparse_csr layout), with the
// transposed pattern the input gradient runs on. The form is derived from the dense weight and
// its mask; values are gathered from the dense weight at each forward while it exists, so the
// two never drift, and to_dense() goes back.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels/kernels.hpp"
#include "core/tensor.hpp"

namespace shears {

struct CsrMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_ptr;  // rows + 1, from 0, non-decreasing
  std::vector<int32_t> col;      // ascending within a row
  std::vector<float> values;
  int64_t nnz() const { return static_cast<int64_t>(col.size()); }
  kernels::CsrRows view() const { return {row_ptr.data(), row_ptr.data() + 1, col.data(), values.data()}; }
  // Throws naming `what` unless the arrays form a valid CSR matrix of this shape.
  void check(const std::string& what) const;
};

class SparseWeight {
 public:
  // The entries where mask != 0, or without a mask where weight != 0.
  static SparseWeight from_dense(const Tensor& weight, const Tensor& mask = {});
  // A form read from a file: the dense shape and its CSR matrix (checked).
  static SparseWeight from_csr(const Shape& shape, CsrMatrix w, const std::string& what);

  const Shape& shape() const { return shape_; }
  const CsrMatrix& w() const { return w_; }  // (out, in·kH·kW) with the values last gathered
  // Its transpose, with w()'s values (brought into its order on first use after a gather).
  const CsrMatrix& wt();
  int64_t nnz() const { return w_.nnz(); }
  double density() const;
  int64_t bytes() const;  // memory of the form (both patterns and values)
  // Values ← the dense weight at the kept positions.
  void gather(const float* dense);
  // Frozen (nn::sparsify's inference mode): the layers run on these values and no longer read
  // the dense weight, so changing it has no effect until the model is sparsified again.
  bool frozen() const { return frozen_; }
  void freeze() { frozen_ = true; }
  void scatter(const float* values, float* dense) const;  // dense (zeroed by the caller) ← values
  Tensor to_dense() const;

 private:
  void build_transpose();
  Shape shape_;
  CsrMatrix w_, wt_;
  std::vector<int64_t> wt_source_;  // for each entry of wt_, its entry in w_
  bool wt_stale_ = true, frozen_ = false;
};

// Where the sparse kernels pay: a layer runs sparse when its density is at most the threshold
// for its kind on this instruction set, a fixed table measured offline (docs/sparse.md, bench
// BM_sparse_vs_dense); SHEARS_SPARSE_DENSITY=d overrides it for every kind.
enum class SparseKind { linear, conv1x1, conv };
const char* sparse_kind_name(SparseKind kind);
double sparse_density_threshold(kernels::Isa isa, SparseKind kind);
double sparse_density_threshold(SparseKind kind);  // for the kernel table in use, or the override

}  // namespace shears
