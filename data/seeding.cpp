#include "data/seeding.hpp"

#include <numeric>
#include <utility>

namespace shears::data {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t derive_seed(uint64_t seed, Stream stream, uint64_t a, uint64_t b) {
  return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(stream)) ^ a) ^ b);
}

Generator sample_generator(uint64_t seed, int64_t epoch, int64_t index) {
  return Generator(derive_seed(seed, Stream::augment, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)));
}

std::vector<int64_t> randperm(int64_t n, Generator& gen) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[gen.randint(i + 1)]);
  return perm;
}

}  // namespace shears::data
