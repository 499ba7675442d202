// Optimizer state as `shears train --resume` reads it: a safetensors file (parsed from memory)
// loaded by optim::Optimizer::load_state_dict into SGD with momentum and into Adam over the
// small model's parameters, then one step each (the loaded state must be usable, not only named
// and shaped right).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "nn/safetensors.hpp"
#include "optim/optimizer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shears::safetensors::File file;
  try {
    file = shears::safetensors::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
  } catch (const shears::Error&) {
    return 0;
  }
  shears::optim::NamedTensors state;
  for (const auto& e : file.tensors) state.emplace_back(e.name, e.value);
  const auto model = shears::fuzz::small_model();
  shears::sum((*model)(shears::Tensor::ones({1, 1, 2, 2}))).backward();  // every parameter gets a gradient
  const shears::optim::NamedTensors params = model->named_parameters();
  shears::optim::Sgd sgd({{params, 0.1, 0.0, 0.1}}, {0.1, 0.9, 0.0, 0.0, false});
  shears::optim::Adam adam({{params, 0.1, 0.0, 0.1}}, {});
  for (shears::optim::Optimizer* opt : {static_cast<shears::optim::Optimizer*>(&sgd),
                                        static_cast<shears::optim::Optimizer*>(&adam)}) {
    try {
      opt->load_state_dict(state);
      opt->step();
    } catch (const shears::Error&) {
    }
  }
  return 0;
}
