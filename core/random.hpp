// Seeded random numbers: one stream drives init, shuffling, augmentation and sampling, so a
// run is reproducible for a seed (draws are sequential, so independent of the thread count).
#pragma once
#include <cstdint>
#include <random>

namespace shears {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); has_spare_normal_ = false; }
  uint64_t next_u64() { return engine_(); }
  float uniform();                 // [0, 1), 24 random bits
  float normal();                  // standard normal, Box-Muller in double
  int64_t randint(int64_t bound);  // [0, bound), unbiased

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

// The process-wide generator, seeded by manual_seed (like torch.manual_seed).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace shears
