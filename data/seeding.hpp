// How one seed drives splitting, shuffling and augmentation. Every random stream is derived from
// the user's seed and the position it serves (epoch, sample index), never from a shared running
// generator, so results do not depend on which thread prepared which sample.
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.hpp"

namespace shears::data {

// What a derived stream is used for; the tag keeps the streams of one seed apart.
enum class Stream : uint64_t { split = 1, shuffle = 2, augment = 3, synthetic = 4 };

// A well-mixed 64-bit seed for the stream (seed, stream, a, b); distinct inputs give
// independent-looking streams (the splitmix64 finaliser applied per part).
uint64_t derive_seed(uint64_t seed, Stream stream, uint64_t a = 0, uint64_t b = 0);

// The generator for augmenting sample `index` in `epoch`.
Generator sample_generator(uint64_t seed, int64_t epoch, int64_t index);

// A uniformly random permutation of [0, n) (torch.randperm), by Fisher-Yates.
std::vector<int64_t> randperm(int64_t n, Generator& gen);

}  // namespace shears::data
