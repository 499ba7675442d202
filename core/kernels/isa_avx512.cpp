// The avx512 kernel table. Built with this ISA's flags (see the Makefile).
#define SHEARS_KERNEL_NS isa_avx512
#include "core/kernels/kernels_impl.hpp"

namespace shears::kernels {

const Table& avx512_table() {
  static const Table table = isa_avx512::make_table<simd::Avx512>(Isa::Avx512);
  return table;
}

}  // namespace shears::kernels
