// The avx2 kernel table. Built with this ISA's flags (see the Makefile).
#define SHEARS_KERNEL_NS isa_avx2
#include "core/kernels/kernels_impl.hpp"

namespace shears::kernels {

const Table& avx2_table() {
  static const Table table = isa_avx2::make_table<simd::Avx2>(Isa::Avx2);
  return table;
}

}  // namespace shears::kernels
