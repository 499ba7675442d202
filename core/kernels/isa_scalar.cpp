// The scalar kernel table. Built with this ISA's flags (see the Makefile).
#define SHEARS_KERNEL_NS isa_scalar
#include "core/kernels/kernels_impl.hpp"

namespace shears::kernels {

const Table& scalar_table() {
  static const Table table = isa_scalar::make_table<simd::Scalar>(Isa::Scalar);
  return table;
}

}  // namespace shears::kernels
