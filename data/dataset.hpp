// Dataset: indexed (image, label) samples, as torch.utils.data.Dataset. Every reader (IDX, CIFAR,
// image folders, synthetic) decodes into an InMemoryDataset of bytes up front, so bad files fail at
// load time with the file named, and get() is cheap and thread-safe for the loader's workers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "data/image.hpp"
#include "data/transforms.hpp"

namespace shears::data {

struct Sample {
  Image image;
  int64_t label = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Sample `index` in [0, size()), pixel values as stored (0..255 for 8-bit sources). Thread-safe.
  virtual Sample get(int64_t index) const = 0;
  virtual int64_t label(int64_t index) const = 0;               // without building the image
  virtual Shape image_shape() const = 0;                        // (C, H, W), the same for every sample
  virtual const std::vector<std::string>& classes() const = 0;  // label k is classes()[k]
  int64_t num_classes() const { return static_cast<int64_t>(classes().size()); }
};

// N images of one shape held as bytes, each (C, H, W), with labels in [0, classes.size()).
class InMemoryDataset final : public Dataset {
 public:
  InMemoryDataset(Shape image_shape, std::vector<uint8_t> pixels, std::vector<int64_t> labels,
                  std::vector<std::string> classes);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  Shape image_shape() const override { return shape_; }
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  Shape shape_;
  int64_t image_bytes_;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

// The samples of `base` at `indices`, in that order (torch.utils.data.Subset).
class Subset final : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);

  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  Shape image_shape() const override { return base_->image_shape(); }
  const std::vector<std::string>& classes() const override { return base_->classes(); }
  const std::vector<int64_t>& indices() const { return indices_; }
  const std::shared_ptr<const Dataset>& base() const { return base_; }

 private:
  int64_t base_index(int64_t index) const;
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

// The default of the readers' max_bytes (what one file's data may take in memory, refused before
// it is allocated): the machine's physical memory.
int64_t default_max_bytes();

// A source's two standard parts; test is null when the source has none.
struct TrainTest {
  std::shared_ptr<const Dataset> train, test;
};

// Disjoint random subsets of the given lengths, which must sum to dataset->size()
// (torch.utils.data.random_split); the same seed gives the same split.
std::vector<std::shared_ptr<const Dataset>> random_split(const std::shared_ptr<const Dataset>& dataset,
                                                         const std::vector<int64_t>& lengths, uint64_t seed);

// Per-channel mean and (population) standard deviation of pixel·scale over the dataset, the
// numbers Normalize wants (scale 1/255 gives them on ToFloat's [0, 1] scale). Each image is first
// passed through `view` (e.g. ResizeCenterCrop for photos of many sizes); max_samples > 0 reads
// only that many images, evenly spaced.
struct ChannelStats {
  std::vector<double> mean, std;
};
ChannelStats channel_stats(const Dataset& dataset, double scale = 1.0 / 255.0, const Compose& view = {},
                           int64_t max_samples = 0);

}  // namespace shears::data
