// Checkpoints: load_checkpoint into a small MLP (strict and not), and load_model, which rebuilds
// whatever model the file's metadata and shapes describe.
#include "core/error.hpp"
#include "nn/models/registry.hpp"
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
  return 0;
}
