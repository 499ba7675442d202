#include "core/sparse.hpp"

#include <cstdlib>
#include <string>

#include "core/error.hpp"

namespace shears {

void CsrMatrix::check(const std::string& what) const {
  SHEARS_CHECK(static_cast<int64_t>(row_ptr.size()) == rows + 1, what, "crow_indices has ", row_ptr.size(),
               " entries, expected rows + 1 = ", rows + 1);
  SHEARS_CHECK(row_ptr[0] == 0 && row_ptr[rows] == nnz(), what, "crow_indices must run from 0 to the ", nnz(),
               " stored entries, got ", row_ptr[0], " to ", row_ptr[rows]);
  SHEARS_CHECK(static_cast<int64_t>(values.size()) == nnz(), what, "values has ", values.size(),
               " entries, col_indices ", nnz());
  for (int64_t r = 0; r < rows; ++r)
    SHEARS_CHECK(row_ptr[r] <= row_ptr[r + 1], what, "crow_indices decreases at row ", r, " (", row_ptr[r], " > ",
                 row_ptr[r + 1], ")");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = row_ptr[r]; j < row_ptr[r + 1]; ++j) {
      SHEARS_CHECK(col[j] >= 0 && col[j] < cols, what, "col_indices[", j, "] = ", col[j], " is outside [0, ", cols,
                   ")");
      SHEARS_CHECK(j == row_ptr[r] || col[j - 1] < col[j], what, "col_indices of row ", r,
                   " are not strictly ascending at entry ", j);
    }
}

namespace {
int64_t columns_of(const Shape& shape) {
  SHEARS_CHECK(shape.size() == 2 || shape.size() == 4, "sparse weight",
               "expected a Linear (out, in) or Conv2d (out, in, kH, kW) weight, got ", to_string(shape));
  return numel(shape) / shape[0];
}
}  // namespace

SparseWeight SparseWeight::from_dense(const Tensor& weight, const Tensor& mask) {
  SHEARS_CHECK(!mask.defined() || mask.shape() == weight.shape(), "sparse weight", "mask ",
               to_string(mask.shape()), " does not match weight ", to_string(weight.shape()));
  SparseWeight s;
  s.shape_ = weight.shape();
  CsrMatrix& w = s.w_;
  w.rows = weight.size(0), w.cols = columns_of(s.shape_);
  SHEARS_CHECK(w.cols <= INT32_MAX, "sparse weight", "rows of ", w.cols, " entries exceed 32-bit column indices");
  const float* keep = mask.defined() ? mask.data() : weight.data();
  w.row_ptr.assign(1, 0);
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c)
      if (keep[r * w.cols + c] != 0.f) w.col.push_back(static_cast<int32_t>(c));
    w.row_ptr.push_back(w.nnz());
  }
  w.values.resize(w.nnz());
  s.build_transpose();
  s.gather(weight.data());
  return s;
}

SparseWeight SparseWeight::from_csr(const Shape& shape, CsrMatrix w, const std::string& what) {
  SparseWeight s;
  s.shape_ = shape;
  const int64_t cols = columns_of(shape);  // checks the rank first
  SHEARS_CHECK(w.rows == shape[0] && w.cols == cols, what, "a ", w.rows, "x", w.cols,
               " matrix cannot hold a weight of shape ", to_string(shape));
  w.check(what);
  s.w_ = std::move(w);
  s.build_transpose();
  return s;
}

// Wᵀ by counting entries per column, then placing them in row order (so each row of Wᵀ ascends).
void SparseWeight::build_transpose() {
  wt_ = CsrMatrix{w_.cols, w_.rows, std::vector<int64_t>(w_.cols + 1, 0), std::vector<int32_t>(w_.nnz()),
                  std::vector<float>(w_.nnz())};
  for (int32_t c : w_.col) ++wt_.row_ptr[c + 1];
  for (int64_t c = 0; c < w_.cols; ++c) wt_.row_ptr[c + 1] += wt_.row_ptr[c];
  std::vector<int64_t> next(wt_.row_ptr.begin(), wt_.row_ptr.end() - 1);
  wt_source_.assign(w_.nnz(), 0);
  for (int64_t r = 0; r < w_.rows; ++r)
    for (int64_t j = w_.row_ptr[r]; j < w_.row_ptr[r + 1]; ++j) {
      const int64_t k = next[w_.col[j]]++;
      wt_.col[k] = static_cast<int32_t>(r);
      wt_source_[k] = j;
    }
}

double SparseWeight::density() const {
  return w_.rows * w_.cols == 0 ? 0.0 : static_cast<double>(nnz()) / static_cast<double>(w_.rows * w_.cols);
}

int64_t SparseWeight::bytes() const {
  auto of = [](const CsrMatrix& m) {
    return static_cast<int64_t>(m.row_ptr.size() * sizeof(int64_t) + m.col.size() * sizeof(int32_t) +
                                m.values.size() * sizeof(float));
  };
  return of(w_) + of(wt_) + static_cast<int64_t>(wt_source_.size() * sizeof(int64_t));
}

void SparseWeight::gather(const float* dense) {
  for (int64_t r = 0; r < w_.rows; ++r)
    for (int64_t j = w_.row_ptr[r]; j < w_.row_ptr[r + 1]; ++j) w_.values[j] = dense[r * w_.cols + w_.col[j]];
  wt_stale_ = true;
}

const CsrMatrix& SparseWeight::wt() {
  if (wt_stale_)
    for (size_t k = 0; k < wt_source_.size(); ++k) wt_.values[k] = w_.values[wt_source_[k]];
  wt_stale_ = false;
  return wt_;
}

void SparseWeight::scatter(const float* values, float* dense) const {
  for (int64_t r = 0; r < w_.rows; ++r)
    for (int64_t j = w_.row_ptr[r]; j < w_.row_ptr[r + 1]; ++j) dense[r * w_.cols + w_.col[j]] = values[j];
}

Tensor SparseWeight::to_dense() const {
  Tensor dense = Tensor::zeros(shape_);
  scatter(w_.values.data(), dense.data());
  return dense;
}

const char* sparse_kind_name(SparseKind kind) {
  switch (kind) {
    case SparseKind::linear: return "linear";
    case SparseKind::conv1x1: return "conv1x1";
    case SparseKind::conv: return "conv";
  }
  return "?";
}

double sparse_density_threshold(kernels::Isa isa, SparseKind kind) {
  // {linear, conv1x1, conv} per ISA: the density where the sparse and dense times cross in
  // bench/bench_sparse.cpp (BM_linear_4096 at batch 128, BM_conv_kind at batch 32), rounded down;
  // measured on an Intel Xeon (AVX-512, 2 threads; docs/sparse.md#the-density-table). The scalar
  // table's dense Linear and 1×1 run OpenBLAS's vector kernels, its 3×3 the scalar direct kernel.
  static const double table[3][3] = {
      {0.05, 0.05, 0.7},  // scalar
      {0.25, 0.2, 0.4},   // avx2
      {0.4, 0.3, 0.35},   // avx512
  };
  return table[static_cast<int>(isa)][static_cast<int>(kind)];
}

double sparse_density_threshold(SparseKind kind) {
  if (const char* forced = std::getenv("SHEARS_SPARSE_DENSITY"); forced && *forced) {
    char* end = nullptr;
    const double d = std::strtod(forced, &end);
    SHEARS_CHECK(*end == 0 && d >= 0 && d <= 1, "SHEARS_SPARSE_DENSITY", "expected a density in [0, 1], got '", forced,
                 "'");
    return d;
  }
  return sparse_density_threshold(kernels::kernels().isa, kind);
}

}  // namespace shears
