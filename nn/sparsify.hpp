// Sparse execution of a pruned model: sparsify attaches to each Linear and groups-1 Conv2d the
// compressed-row form of its kept entries (core/sparse.hpp) where that runs faster, by the fixed
// density table of core/sparse.hpp (never by timing); the layers then run the sparse kernels,
// forward and backward (masked fine-tuning forms the weight gradient at kept entries only).
// Depthwise and grouped convolutions and BatchNorm stay dense. densify drops the forms.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/sparse.hpp"
#include "nn/module.hpp"

namespace shears::nn {

// auto: where the table says sparse is faster; on: every layer with pruned entries (a pruned
// layer without sparse kernels is an error); off: dense everywhere.
enum class SparseMode { automatic, on, off };
SparseMode parse_sparse_mode(const std::string& text);  // auto | on | off
const char* sparse_mode_name(SparseMode mode);

struct SparsifyOptions {
  SparseMode mode = SparseMode::automatic;
  std::optional<double> max_density;  // overrides the table for every kind
  // Inference: the forms keep the values of now and the layers stop reading the dense weights
  // (no gather per forward, no weight gradient); like torch.jit.freeze, later changes to the
  // weights take effect only when the model is sparsified again.
  bool freeze = false;
};

struct SparseChoice {
  std::string name;  // the weight's dotted name
  SparseKind kind;
  bool supported;     // a Linear or groups-1 Conv2d
  double density;     // kept entries (the mask's, else the weight's non-zeros) / entries
  double threshold;   // the table's (or the override's) density for this kind
  bool sparse;        // runs sparse
};

// Decides and attaches (or drops) each layer's form; returns every Linear's and Conv2d's choice.
std::vector<SparseChoice> sparsify(Module& model, const SparsifyOptions& options = {});
void densify(Module& model);
// Bytes the attached forms hold (patterns and values).
int64_t sparse_bytes(const Module& model);

}  // namespace shears::nn
