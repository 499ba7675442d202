#include "data/prepare.hpp"

#include <numeric>

#include "core/error.hpp"

namespace shears::data {

namespace {
std::shared_ptr<const Dataset> first(const std::shared_ptr<const Dataset>& d, int64_t n) {
  if (n <= 0 || n >= d->size()) return d;
  std::vector<int64_t> indices(n);
  std::iota(indices.begin(), indices.end(), 0);
  return std::make_shared<Subset>(d, std::move(indices));
}
}  // namespace

OpenedData open_data(const DataChoice& choice) {
  OpenOptions options;
  options.dir = choice.data_dir;
  options.seed = choice.seed;
  options.val_fraction = choice.val_fraction;
  options.image_folder.max_pixels = choice.max_image_pixels;
  OpenedData d{open_dataset(choice.data, options), 0, 0, 0, {}, {}};
  SHEARS_CHECK(d.splits.test != nullptr, "--data " + choice.data, "has no test split to evaluate on");
  d.splits.train = first(d.splits.train, choice.limit_train);
  d.splits.test = first(d.splits.test, choice.limit_test);
  Shape shape = d.splits.train->image_shape();
  SHEARS_CHECK(shape[1] == shape[2], "--data " + choice.data, "images must be square, got ", shape[1], "x", shape[2]);
  d.channels = shape[0];
  d.num_classes = d.splits.train->num_classes();
  d.input_size = choice.input_size ? choice.input_size : shape[1];
  SHEARS_CHECK(d.input_size >= shape[1] && (d.input_size - shape[1]) % 2 == 0, "--input-size",
               "must be the dataset's size (", shape[1], ") or larger by an even amount, got ", choice.input_size);
  SHEARS_CHECK(choice.augment == "standard" || choice.augment == "crop-flip" || choice.augment == "none", "--augment",
               "expected standard, crop-flip or none, got '", choice.augment, "'");
  SHEARS_CHECK(choice.crop_padding >= 0, "--crop-padding", "must be at least 0, got ", choice.crop_padding);
  // The standard pipelines minus their augmentation (the test pipeline never augments).
  d.train_transform = standard_transforms(d.splits, choice.augment == "standard");
  d.test_transform = standard_transforms(d.splits, false);
  auto& train = d.train_transform.transforms;
  if (choice.augment == "crop-flip") {
    train.insert(train.begin(), {RandomCrop(d.input_size, Padding(choice.crop_padding)), RandomHorizontalFlip{}});
  }
  if (d.input_size > shape[1]) {  // e.g. Fashion-MNIST 28×28 padded to 32×32 with black borders
    Pad pad{Padding((d.input_size - shape[1]) / 2)};
    train.insert(train.begin(), pad);
    d.test_transform.transforms.insert(d.test_transform.transforms.begin(), pad);
  }
  return d;
}

Shape image_shape(const OpenedData& d) { return {1, d.channels, d.input_size, d.input_size}; }

}  // namespace shears::data
