// Checkpoints: load_checkpoint into a small MLP (strict and not), load_model, which rebuilds
// whatever model the file's metadata and shapes describe, the sparse triples' expansion
// (nn/sparse_checkpoint.hpp, which both loads run first) on its own, and the input contract its
// metadata holds (data/contract.hpp) with the evaluation pipeline built from it.
#include <string>

#include "core/error.hpp"
#include "data/contract.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "nn/sparse_checkpoint.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = (shears::fuzz::scratch() / "input.safetensors").string();
  shears::fuzz::write_file(path, data, size);
  for (bool strict : {true, false}) {
    try {
      shears::fuzz::small_model()->load_checkpoint(path, strict);
    } catch (const shears::Error&) {
    }
  }
  try {
    shears::nn::load_model(path);
  } catch (const shears::Error&) {
  }
  try {
    auto file = shears::safetensors::parse(std::string(reinterpret_cast<const char*>(data), size), path);
    try {
      shears::nn::expand_sparse_entries(file, path);
    } catch (const shears::Error&) {
    }
    if (auto contract = shears::data::contract_from_metadata(file.metadata, path))
      shears::data::eval_transform(*contract);
  } catch (const shears::Error&) {
  }
  return 0;
}
