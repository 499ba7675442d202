#include "nn/sparse_checkpoint.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include "core/error.hpp"
#include "core/sparse.hpp"
#include "core/version.hpp"

namespace shears::nn {

namespace {

using detail::concat;
using safetensors::Entry;
using safetensors::File;
using safetensors::Integers;

const std::string kRows = ".crow_indices", kCols = ".col_indices", kValues = ".values";
const std::string kShapePrefix = "sparse.", kShapeSuffix = ".shape";
constexpr uint64_t kEntriesPerByte = 64, kEntriesSlack = uint64_t{1} << 20;

std::string shape_key(const std::string& name) { return kShapePrefix + name + kShapeSuffix; }

std::string shape_text(const Shape& shape) {
  std::string text;
  for (int64_t d : shape) text.append(text.empty() ? "" : ",").append(std::to_string(d));
  return text;
}

// The masked weights stored compressed: Linear (2-d) and Conv2d (4-d) weights with entries.
NamedTensors compressed(const Module& model) {
  NamedTensors out;
  for (auto& [name, mask] : model.named_masks())
    if ((mask.dim() == 2 || mask.dim() == 4) && mask.numel() > 0) out.emplace_back(name, mask);
  return out;
}

// ---- reading: "<path>: tensor '<name>': <field>: expected …, got …", as safetensors' reader ----

[[noreturn]] void fail(const std::string& path, const std::string& tensor, const std::string& field,
                       const std::string& expected, const std::string& got) {
  throw Error(path + ": tensor '" + tensor + "': " + field + ": expected " + expected + ", got " + got);
}

// The dense shape `sparse.<name>.shape` records: 2 or 4 positive sizes, at most 2^31 - 1 columns
// (CsrMatrix's int32 column indices) when seen as (shape[0], the rest).
Shape read_shape(const File& file, const std::string& path, const std::string& name) {
  const std::string key = shape_key(name), field = "metadata '" + key + "'";
  const auto found = file.metadata.find(key);
  if (found == file.metadata.end()) fail(path, name, field, "the dense shape, e.g. 64,64,3,3", "none");
  const std::string& text = found->second;
  const std::string expected = "2 or 4 comma-separated positive integers, e.g. 64,64,3,3";
  Shape shape;
  int64_t total = 1;
  for (const char *at = text.data(), *end = at + text.size();; ++at) {
    int64_t d = 0;
    const auto [next, ec] = std::from_chars(at, end, d);
    if (ec != std::errc() || d <= 0 || __builtin_mul_overflow(total, d, &total) || (next != end && *next != ','))
      fail(path, name, field, expected, "'" + text + "'");
    shape.push_back(d);
    if ((at = next) == end) break;
  }
  if (shape.size() != 2 && shape.size() != 4) fail(path, name, field, expected, "'" + text + "'");
  if (total / shape[0] > std::numeric_limits<int32_t>::max())
    fail(path, name, field, "at most 2^31 - 1 columns (entries per row)", concat(total / shape[0], " in '", text, "'"));
  return shape;
}

const Entry& member(const std::map<std::string, const Entry*>& tensors, const std::string& path,
                    const std::string& name, const std::string& suffix) {
  const auto found = tensors.find(name + suffix);
  if (found == tensors.end())
    fail(path, name + suffix, "entry", "a tensor (of the CSR triple of '" + name + "')", "none");
  return *found->second;
}

// An index tensor's exact integers: one dimension, an integer dtype, none negative.
const std::vector<int64_t>& indices(const Entry& entry, const std::string& path) {
  if (!safetensors::carries_integers(entry.dtype))
    fail(path, entry.name, "dtype", "an integer dtype (I8, I16, U16, I32, U32, I64 or U64)",
         safetensors::dtype_name(entry.dtype));
  if (!entry.integers) fail(path, entry.name, "data", "indices below 2^63", "a larger U64");
  if (entry.integers->shape.size() != 1)
    fail(path, entry.name, "shape", "one dimension", to_string(entry.integers->shape));
  const std::vector<int64_t>& v = entry.integers->values;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0) fail(path, entry.name, "data", "non-negative indices", concat(v[i], " at element ", i));
  return v;
}

// The CSR matrix of one triple, checked (CsrMatrix::check) against the recorded shape.
CsrMatrix read_matrix(const std::map<std::string, const Entry*>& tensors, const std::string& path,
                      const std::string& name, const Shape& shape) {
  const Entry &rows = member(tensors, path, name, kRows), &cols = member(tensors, path, name, kCols),
              &values = member(tensors, path, name, kValues);
  CsrMatrix m;
  m.rows = shape[0], m.cols = numel(shape) / shape[0];
  const std::string dims = "the dense shape " + shape_text(shape) + " in 'sparse." + name + ".shape'";
  m.row_ptr = indices(rows, path);
  if (std::ssize(m.row_ptr) != m.rows + 1)
    fail(path, rows.name, "shape", concat("[", m.rows + 1, "] (rows + 1 for ", dims, ")"),
         to_string(rows.integers->shape));
  const std::vector<int64_t>& col = indices(cols, path);
  for (std::size_t j = 0; j < col.size(); ++j)  // before narrowing to CsrMatrix's int32
    if (col[j] >= m.cols)
      fail(path, cols.name, "data", concat("indices below ", m.cols, " (the columns of ", dims, ")"),
           concat(col[j], " at element ", j));
  m.col.assign(col.begin(), col.end());
  if (values.value.dim() != 1) fail(path, values.name, "shape", "one dimension", to_string(values.value.shape()));
  m.values.assign(values.value.data(), values.value.data() + values.value.numel());
  m.check(concat(path, ": tensor '", name, "' (CSR of ", dims, ")"));
  return m;
}

// The dense entries every triple of a file may expand to, together (see the header).
uint64_t dense_budget(const File& file, const safetensors::Limits& limits) {
  uint64_t bytes = 0;
  for (const Entry& e : file.tensors)
    bytes += static_cast<uint64_t>(e.integers ? e.integers->values.size() : e.value.numel()) *
             safetensors::dtype_size(e.dtype);
  bytes = std::min(bytes, std::numeric_limits<uint64_t>::max() / (2 * kEntriesPerByte));
  return std::min(kEntriesPerByte * bytes + kEntriesSlack, limits.max_bytes / (2 * sizeof(float)));
}

// The names of the triples: from their index tensors and from their shape keys.
std::set<std::string> triple_names(const File& file) {
  std::set<std::string> names;
  for (const Entry& e : file.tensors)
    for (const std::string& suffix : {kRows, kCols})
      if (e.name.ends_with(suffix)) names.insert(e.name.substr(0, e.name.size() - suffix.size()));
  for (const auto& [key, value] : file.metadata)
    if (key.size() > kShapePrefix.size() + kShapeSuffix.size() && key.starts_with(kShapePrefix) &&
        key.ends_with(kShapeSuffix))
      names.insert(key.substr(kShapePrefix.size(), key.size() - kShapePrefix.size() - kShapeSuffix.size()));
  return names;
}

}  // namespace

Dtype row_index_dtype(int64_t nnz) { return nnz <= std::numeric_limits<int32_t>::max() ? Dtype::I32 : Dtype::I64; }
Dtype column_index_dtype(int64_t cols) { return cols < 65536 ? Dtype::U16 : Dtype::I32; }

std::vector<Entry> sparse_state_dict(const Module& model) {
  std::map<std::string, Tensor> masks;
  for (auto& [name, mask] : compressed(model)) masks.emplace(name, mask);
  std::vector<Entry> out;
  for (Entry& e : model.state_dict(MaskFormat::dense)) {
    const auto mask = masks.find(e.name);
    if (mask == masks.end()) {
      out.push_back(std::move(e));
      continue;
    }
    const SparseWeight form = SparseWeight::from_dense(e.value, mask->second);
    const CsrMatrix& w = form.w();
    out.push_back({e.name + kRows, {}, row_index_dtype(w.nnz()), Integers{{w.rows + 1}, w.row_ptr}});
    out.push_back({e.name + kCols, {}, column_index_dtype(w.cols), Integers{{w.nnz()}, {w.col.begin(), w.col.end()}}});
    out.push_back({e.name + kValues, Tensor::from_vector({w.nnz()}, w.values), Dtype::F32});
  }
  return out;
}

std::map<std::string, std::string> sparse_metadata(const Module& model) {
  std::map<std::string, std::string> meta{{"shears.sparse", "csr"}};
  for (auto& [name, mask] : compressed(model)) meta[shape_key(name)] = shape_text(mask.shape());
  return meta;
}

void save_sparse_checkpoint(const Module& model, const std::string& path,
                            const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> meta = model.metadata();
  for (auto& [k, v] : extra) meta[k] = v;
  // A shape key left from elsewhere would name a triple the file does not hold.
  std::erase_if(meta, [](const auto& item) { return item.first.starts_with(kShapePrefix); });
  for (auto& [k, v] : sparse_metadata(model)) meta[k] = v;
  meta["format"] = "pt";  // provenance wins, as in Module::save_checkpoint
  meta["shears.version"] = kVersion;
  meta["shears.schema"] = std::to_string(kCheckpointSchema);
  safetensors::save(path, sparse_state_dict(model), meta);
}

void expand_sparse_entries(File& file, const std::string& path, const safetensors::Limits& limits) {
  const auto layout = file.metadata.find("shears.sparse");
  if (layout != file.metadata.end() && layout->second != "csr")
    throw Error(path + ": __metadata__: 'shears.sparse': expected csr, got '" + layout->second + "'");
  const std::set<std::string> names = triple_names(file);
  if (names.empty()) return;
  std::map<std::string, const Entry*> tensors;
  for (const Entry& e : file.tensors) tensors.emplace(e.name, &e);
  const uint64_t budget = dense_budget(file, limits);
  uint64_t used = 0;
  std::vector<Entry> expanded;
  for (const std::string& name : names) {
    for (const std::string& taken : {name, name + "_orig", name + "_mask"})
      if (tensors.count(taken)) fail(path, taken, "entry", "no tensor of this name beside the CSR triple", "one");
    const Shape shape = read_shape(file, path, name);
    const auto entries = static_cast<uint64_t>(numel(shape));
    if (entries > budget - used)
      fail(path, name, "metadata '" + shape_key(name) + "'",
           concat("at most ", budget - used, " more dense entries (", kEntriesPerByte,
                  " per byte of the file's tensors, plus 2^20, within safetensors::Limits)"),
           concat(entries, " (", shape_text(shape), ")"));
    used += entries;
    const CsrMatrix m = read_matrix(tensors, path, name, shape);
    Tensor orig = Tensor::zeros(shape), mask = Tensor::zeros(shape);
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t j = m.row_ptr[r]; j < m.row_ptr[r + 1]; ++j) {
        orig.data()[r * m.cols + m.col[j]] = m.values[j];
        mask.data()[r * m.cols + m.col[j]] = 1.f;
      }
    expanded.push_back({name + "_orig", std::move(orig), Dtype::F32});
    expanded.push_back({name + "_mask", std::move(mask), Dtype::F32});
  }
  std::erase_if(file.tensors, [&](const Entry& e) {
    for (const std::string& suffix : {kRows, kCols, kValues})
      if (e.name.ends_with(suffix) && names.count(e.name.substr(0, e.name.size() - suffix.size()))) return true;
    return false;
  });
  for (Entry& e : expanded) file.tensors.push_back(std::move(e));
  for (const std::string& name : names) file.metadata.erase(shape_key(name));
  file.metadata.erase("shears.sparse");
}

}  // namespace shears::nn
