#include "core/ops.hpp"

namespace shears {

namespace {
std::vector<OpInfo>& registry() {
  static std::vector<OpInfo> ops;
  return ops;
}
}  // namespace

const std::vector<OpInfo>& registered_ops() { return registry(); }

OpRegistrar::OpRegistrar(const char* name) { registry().push_back({name}); }

}  // namespace shears
