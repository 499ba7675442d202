// Sparse checkpoints (docs/checkpoints.md#sparse-checkpoints): each pruned Linear or Conv2d weight
// stored as its kept entries in compressed rows under PyTorch's sparse_csr names,
// `<name>.crow_indices`, `<name>.col_indices` and `<name>.values`, with its dense shape in the
// metadata key `sparse.<name>.shape`; at 90% sparsity the file is about a sixth of the dense one.
// Readers expand the triples into `<name>_orig` + `<name>_mask` right after loading, so the rest
// of shears (load_state_dict, load_model) sees an ordinary masked checkpoint.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "nn/safetensors.hpp"

namespace shears::nn {

// The narrowest index dtypes PyTorch reads: row pointers I32 below 2^31 entries, else I64; column
// indices U16 below 65,536 columns, else I32.
Dtype row_index_dtype(int64_t nnz);
Dtype column_index_dtype(int64_t cols);

// state_dict(MaskFormat::dense), but every masked 2-d or 4-d weight (Linear, Conv2d) as its CSR
// triple. The index entries carry only Entry::integers (no float value): they are for
// safetensors::save, not for load_state_dict.
std::vector<safetensors::Entry> sparse_state_dict(const Module& model);
// What a reader needs beside the tensors: `sparse.<name>.shape` ("64,64,3,3") per triple, and
// `shears.sparse` = "csr".
std::map<std::string, std::string> sparse_metadata(const Module& model);
// Module::save_checkpoint's metadata (the model's, then `extra`, then provenance) plus the sparse
// keys, which replace any `sparse.*` key the model or `extra` held.
void save_sparse_checkpoint(const Module& model, const std::string& path,
                            const std::map<std::string, std::string>& extra = {});

// Replaces every CSR triple of `file` by `<name>_orig` (the values, zeros off the pattern) and
// `<name>_mask` (1 on the pattern); a file without triples is left as it is. Refuses, naming
// path_for_errors and the tensor: a missing member or shape key, a malformed shape, indices of a
// float dtype, negative or out-of-range indices, row pointers of the wrong length or order, and
// values and column indices of different lengths. The dense tensors are bounded before anything is
// allocated: at most 64 entries per byte of the file's tensor data, plus 2^20 (so densities
// down to about 0.3% expand), and at most limits.max_bytes as float32 orig and mask.
void expand_sparse_entries(safetensors::File& file, const std::string& path_for_errors,
                           const safetensors::Limits& limits = {});

}  // namespace shears::nn
