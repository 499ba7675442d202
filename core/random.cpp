#include "core/random.hpp"

#include <cmath>
#include <numbers>

namespace shears {

float Generator::uniform() { return static_cast<float>(engine_() >> 40) * 0x1.0p-24f; }

float Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return static_cast<float>(spare_normal_);
  }
  // u1 in (0, 1] so log(u1) is finite.
  double u1 = (static_cast<double>(engine_() >> 11) + 1.0) * 0x1.0p-53;
  double u2 = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  double radius = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * std::numbers::pi * u2;
  spare_normal_ = radius * std::sin(angle);
  has_spare_normal_ = true;
  return static_cast<float>(radius * std::cos(angle));
}

int64_t Generator::randint(int64_t bound) {
  std::uniform_int_distribution<int64_t> dist(0, bound - 1);
  return dist(engine_);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace shears
