#include <cstdio>
#include "core/blas.hpp"
int main() {
  auto i = shears::blas::info();
  std::printf("%s %s\n", i.core.c_str(), i.config.c_str());
}
