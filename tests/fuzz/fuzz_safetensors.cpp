// safetensors: header and data, parsed from memory (safetensors::parse).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "nn/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    shears::safetensors::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
  } catch (const shears::Error&) {
  }
  return 0;
}
