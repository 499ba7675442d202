#include "data/synthetic.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "data/seeding.hpp"

namespace shears::data {

namespace {

void fill_bytes(uint8_t* dst, int64_t n, Generator& gen) {
  for (int64_t i = 0; i < n; i += 8) {
    uint64_t bits = gen.next_u64();
    for (int64_t k = i; k < std::min(n, i + 8); ++k, bits >>= 8) dst[k] = static_cast<uint8_t>(bits);
  }
}

std::shared_ptr<InMemoryDataset> make_part(const SyntheticOptions& options, const std::vector<uint8_t>& prototypes,
                                           const std::vector<std::string>& classes, int64_t first, int64_t count) {
  const int64_t image_bytes = shears::numel(options.image_shape);
  std::vector<uint8_t> pixels(static_cast<size_t>(count * image_bytes));
  std::vector<int64_t> labels(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t index = first + i;
    labels[i] = index % options.num_classes;
    uint8_t* dst = pixels.data() + i * image_bytes;
    Generator gen(derive_seed(options.seed, Stream::synthetic, 1, static_cast<uint64_t>(index)));
    fill_bytes(dst, image_bytes, gen);
    const uint8_t* proto = prototypes.data() + labels[i] * image_bytes;
    for (int64_t k = 0; k < image_bytes; ++k) dst[k] = static_cast<uint8_t>((dst[k] + proto[k]) / 2);
  }
  return std::make_shared<InMemoryDataset>(options.image_shape, std::move(pixels), std::move(labels), classes);
}

}  // namespace

TrainTest make_synthetic(const SyntheticOptions& options) {
  const Shape& s = options.image_shape;
  SHEARS_CHECK(s.size() == 3 && s[0] > 0 && s[1] > 0 && s[2] > 0, "make_synthetic",
               "image shape must be (C, H, W) with positive sizes, got ", to_string(s));
  SHEARS_CHECK(options.num_classes > 0 && options.train_size > 0 && options.test_size >= 0, "make_synthetic",
               "need num_classes > 0, train_size > 0 and test_size >= 0, got ", options.num_classes, ", ",
               options.train_size, ", ", options.test_size);
  const int64_t image_bytes = shears::numel(s);
  std::vector<uint8_t> prototypes(static_cast<size_t>(options.num_classes * image_bytes));
  std::vector<std::string> classes;
  for (int64_t k = 0; k < options.num_classes; ++k) {
    Generator gen(derive_seed(options.seed, Stream::synthetic, 0, static_cast<uint64_t>(k)));
    fill_bytes(prototypes.data() + k * image_bytes, image_bytes, gen);
    classes.push_back("class" + std::to_string(k));
  }
  TrainTest parts;
  parts.train = make_part(options, prototypes, classes, 0, options.train_size);
  if (options.test_size > 0)
    parts.test = make_part(options, prototypes, classes, options.train_size, options.test_size);
  return parts;
}

}  // namespace shears::data
