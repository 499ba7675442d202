// IDX through read_idx (raw, or gzip: ByteReader inflates any input that starts with its magic),
// asked for the rank the magic number's fourth byte claims (1 when absent or 0).
#include <algorithm>

#include "core/error.hpp"
#include "data/idx.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = shears::fuzz::scratch() / "input-idx";
  shears::fuzz::write_file(path, data, size);
  const int64_t ndims = size >= 4 ? std::max<int64_t>(1, data[3]) : 1;
  try {
    shears::data::read_idx(path.string(), ndims);
  } catch (const shears::Error&) {
  }
  return 0;
}
