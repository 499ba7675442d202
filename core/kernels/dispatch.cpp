// Chooses the kernel table once per process from the CPU's features, or from SHEARS_ISA.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "core/kernels/kernels.hpp"

namespace shears::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

const Table& table_for(Isa isa) {
  SHEARS_CHECK(cpu_supports(isa), "kernels", "this CPU cannot run the ", isa_name(isa), " kernels");
  switch (isa) {
    case Isa::Scalar: return scalar_table();
    case Isa::Avx2: return avx2_table();
    case Isa::Avx512: return avx512_table();
  }
  return scalar_table();
}

namespace {
const Table& choose() {
  if (const char* forced = std::getenv("SHEARS_ISA"); forced && *forced) {
    std::string name = forced;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
      if (name == isa_name(isa)) return table_for(isa);
    throw Error("SHEARS_ISA: expected scalar, avx2 or avx512, got '" + name + "'");
  }
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (cpu_supports(isa)) return table_for(isa);
  return scalar_table();
}
}  // namespace

namespace {
const Table*& current() {
  static const Table* table = &choose();
  return table;
}
}  // namespace

const Table& kernels() { return *current(); }

void use_isa(Isa isa) { current() = &table_for(isa); }

}  // namespace shears::kernels
