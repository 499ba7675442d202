#include "data/dataset.hpp"

#include <algorithm>
#include <cmath>

#include "core/allocator.hpp"
#include "core/error.hpp"
#include "data/seeding.hpp"

namespace shears::data {

int64_t default_max_bytes() { return static_cast<int64_t>(physical_memory_bytes()); }

InMemoryDataset::InMemoryDataset(Shape image_shape, std::vector<uint8_t> pixels, std::vector<int64_t> labels,
                                 std::vector<std::string> classes)
    : shape_(std::move(image_shape)),
      image_bytes_(0),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      classes_(std::move(classes)) {
  SHEARS_CHECK(shape_.size() == 3 && shape_[0] > 0 && shape_[1] > 0 && shape_[2] > 0, "InMemoryDataset",
               "image shape must be (C, H, W) with positive sizes, got ", to_string(shape_));
  image_bytes_ = shears::numel(shape_);
  SHEARS_CHECK(static_cast<int64_t>(pixels_.size()) == size() * image_bytes_, "InMemoryDataset", size(), " images of ",
               to_string(shape_), " need ", size() * image_bytes_, " bytes, got ", pixels_.size());
  SHEARS_CHECK(!classes_.empty(), "InMemoryDataset", "no class names given");
  for (int64_t i = 0; i < size(); ++i)
    SHEARS_CHECK(labels_[i] >= 0 && labels_[i] < num_classes(), "InMemoryDataset", "label ", labels_[i], " of sample ",
                 i, " is outside [0, ", num_classes(), ")");
}

Sample InMemoryDataset::get(int64_t index) const {
  int64_t label_value = label(index);
  Image image(shape_[0], shape_[1], shape_[2]);
  const uint8_t* src = pixels_.data() + index * image_bytes_;
  for (int64_t i = 0; i < image_bytes_; ++i) image.pixels[i] = src[i];
  return {std::move(image), label_value};
}

int64_t InMemoryDataset::label(int64_t index) const {
  SHEARS_CHECK(index >= 0 && index < size(), "InMemoryDataset", "index ", index, " is outside [0, ", size(), ")");
  return labels_[index];
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  SHEARS_CHECK(base_ != nullptr, "Subset", "no base dataset");
  for (int64_t i : indices_)
    SHEARS_CHECK(i >= 0 && i < base_->size(), "Subset", "index ", i, " is outside the base dataset's [0, ",
                 base_->size(), ")");
}

int64_t Subset::base_index(int64_t index) const {
  SHEARS_CHECK(index >= 0 && index < size(), "Subset", "index ", index, " is outside [0, ", size(), ")");
  return indices_[index];
}

Sample Subset::get(int64_t index) const { return base_->get(base_index(index)); }
int64_t Subset::label(int64_t index) const { return base_->label(base_index(index)); }

std::vector<std::shared_ptr<const Dataset>> random_split(const std::shared_ptr<const Dataset>& dataset,
                                                         const std::vector<int64_t>& lengths, uint64_t seed) {
  SHEARS_CHECK(dataset != nullptr, "random_split", "no dataset");
  int64_t total = 0;
  for (int64_t n : lengths) {
    SHEARS_CHECK(n >= 0, "random_split", "negative length ", n);
    total += n;
  }
  SHEARS_CHECK(total == dataset->size(), "random_split", "lengths sum to ", total, " but the dataset has ",
               dataset->size(), " samples");
  Generator gen(derive_seed(seed, Stream::split));
  std::vector<int64_t> perm = randperm(total, gen);
  std::vector<std::shared_ptr<const Dataset>> parts;
  auto begin = perm.begin();
  for (int64_t n : lengths) {
    parts.push_back(std::make_shared<Subset>(dataset, std::vector<int64_t>(begin, begin + n)));
    begin += n;
  }
  return parts;
}

ChannelStats channel_stats(const Dataset& dataset, double scale, const Compose& view, int64_t max_samples) {
  SHEARS_CHECK(dataset.size() > 0, "channel_stats", "empty dataset");
  const int64_t channels = dataset.image_shape()[0];
  const int64_t n = max_samples > 0 ? std::min(max_samples, dataset.size()) : dataset.size();
  std::vector<double> sum(channels, 0.0), sum_sq(channels, 0.0);
  double count = 0.0;
  Generator unused(0);  // the view draws nothing
  for (int64_t k = 0; k < n; ++k) {
    const int64_t index = k * dataset.size() / n;  // evenly spaced when sampling
    Image image = view.transforms.empty() ? dataset.get(index).image : view(dataset.get(index).image, unused);
    const int64_t plane = image.height * image.width;
    for (int64_t c = 0; c < channels; ++c) {
      const float* p = image.pixels.data() + c * plane;
      double s = 0.0, s2 = 0.0;
      for (int64_t i = 0; i < plane; ++i) {
        s += p[i];
        s2 += static_cast<double>(p[i]) * p[i];
      }
      sum[c] += s;
      sum_sq[c] += s2;
    }
    count += static_cast<double>(plane);
  }
  ChannelStats stats;
  for (int64_t c = 0; c < channels; ++c) {
    double mean = sum[c] / count;
    stats.mean.push_back(mean * scale);
    stats.std.push_back(std::sqrt(std::max(sum_sq[c] / count - mean * mean, 0.0)) * scale);
  }
  return stats;
}

}  // namespace shears::data
