// safetensors checkpoints (docs/design.md#checkpoints): read and write per the "Format" section of
// huggingface/safetensors README.md and its reference implementation safetensors/src/tensor.rs:
//   u64 little-endian N · N bytes of JSON header · byte buffer to the end of the file.
// Values live in memory as float32 whatever the dtype on disk; integer tensors (I8 … U64) carry
// their exact elements too, for the indices of sparse checkpoints (nn/sparse_checkpoint.hpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/allocator.hpp"
#include "core/tensor.hpp"

namespace shears::safetensors {

// The dtypes shears reads and writes (the spec's F8_* and the reference's F4/F6/C64 are refused).
enum class Dtype { BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64 };
const char* dtype_name(Dtype);
std::size_t dtype_size(Dtype);  // bytes per element on disk
// Whether `dtype` stores `value` exactly: integers in range for the integer dtypes, 0 or 1 for
// BOOL; the floating dtypes hold any value (F16/BF16 round, F32/F64 are exact).
bool holds_exactly(Dtype dtype, float value);
// Whether entries of this dtype carry exact integers (Entry::integers): I8, I16, U16, I32, U32,
// I64, U64. Not BOOL and U8, which hold flags and bytes, exact as float32 anyway.
bool carries_integers(Dtype dtype);

// A tensor's elements as exact integers, row-major: float32 holds integers exactly only below 2^24.
struct Integers {
  Shape shape;
  std::vector<int64_t> values;  // numel(shape) of them
};

// A tensor as stored: its values live in memory as float32; `dtype` is the on-disk type.
struct Entry {
  std::string name;
  Tensor value;  // may be undefined when `integers` is set
  Dtype dtype = Dtype::F32;
  // The reader sets it for every dtype that carries_integers (besides `value`), except a U64
  // tensor with an element of 2^63 or more. When set, the writer writes it, checking that each
  // element fits `dtype`; a defined `value` must then hold the same numbers (reset one to edit).
  std::optional<Integers> integers = std::nullopt;
};

struct File {
  std::vector<Entry> tensors;                        // in file order of data offsets
  std::map<std::string, std::string> metadata;       // the __metadata__ map
  const Entry* find(const std::string& name) const;  // nullptr when absent
};

// What a load may take: at most max_bytes of memory for the file's bytes, its tensors as float32
// and the exact integers (8 bytes an element) together, checked before the file is read and
// again, from the header, before any tensor is decoded. (A header cannot claim more data than
// the file holds: every span is checked first.)
struct Limits {
  uint64_t max_bytes = physical_memory_bytes();
};

// Strict validation; throws shears::Error "<path>: tensor '<name>': <field>: expected …, got …"
// (file-level problems omit the tensor). Integer dtypes convert to float32 exactly while
// |v| < 2^24 and round to the nearest float32 beyond (Entry::integers keeps them exact); F64
// rounds to nearest.
File load(const std::string& path, const Limits& limits = {});
// The same from bytes in memory (fuzzing, tests); path_for_errors only labels the messages.
File parse(const std::string& bytes, const std::string& path_for_errors, const Limits& limits = {});

// Writes the header padded with spaces to a multiple of 8, tensors in a deterministic order (as
// the reference writer: widest dtype first, then by name, so every tensor is naturally aligned),
// atomically: a fresh temporary file "<path>.tmp.XXXXXX" (mkostemp, so concurrent writers never
// share one), fsync, rename, fsync the directory; a failed write leaves any existing file
// untouched and no temporary file behind. Integer dtypes (and BOOL: 0 or 1) must hold values
// they represent exactly (Entry::integers when set, else the float32 values), else shears::Error
// naming the tensor; F16/BF16 round to nearest even as PyTorch's .half() and .bfloat16() do
// (overflow becomes ±inf).
void save(const std::string& path, const std::vector<Entry>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Removes from `dir` the temporary files "<name>.safetensors.tmp.XXXXXX" that save() leaves only
// when its process is killed mid-write, and returns their paths. For a folder only this process
// writes to (a run folder before a resumed run): another writer's temporary file would go too.
std::vector<std::string> remove_temp_files(const std::string& dir);

}  // namespace shears::safetensors
