// What a run reads: a dataset chosen by name or folder, its limits and augmentation, opened into
// splits and the train and test pipelines a model of matching input size consumes.
#pragma once
#include <cstdint>
#include <string>

#include "data/contract.hpp"
#include "data/open_dataset.hpp"

namespace shears::data {

struct DataChoice {
  // --data: a dataset name or a directory; "": a checkpoint's dataset, else the format of
  // --data-dir, else fashion-mnist.
  std::string data;
  std::string data_dir;  // --data-dir
  // --input-size [C] S: the model's input side (0: a checkpoint's, else the dataset's, image
  // folders 32); built-in datasets are padded evenly to it, image folders resized and cropped.
  int64_t input_size = 0;
  int64_t channels = 0;  // --in-channels (or C): 0 as a checkpoint's or the data's; folders: 3
  // Image folders: the evaluation resize (ResizeCenterCrop's crop_pct and interpolation), the
  // split names (OpenOptions) and the decoded-image cache.
  double crop_pct = 0.875;
  std::string interpolation = "bilinear";
  std::string train_split = "train", val_split;
  int64_t cache_mb = 256;
  std::vector<float> mean, std;             // --mean/--std: override the dataset's (or checkpoint's) statistics
  int64_t limit_train = 0, limit_test = 0;  // first N samples only (quick runs); 0: all
  double val_fraction = 0.0;                // of train held out (seeded) for model selection
  int64_t max_image_pixels = ImageFolderOptions{}.max_pixels;  // image folders: larger files refused
  int workers = 2;
  uint64_t seed = 0;
  // --augment: the training images' augmentation. "standard": the dataset's usual one (CIFAR:
  // RandomCrop(32, padding 4) and RandomHorizontalFlip; none otherwise); "crop-flip": that crop
  // (--crop-padding pixels, at the input size) and flip for any dataset; "none".
  std::string augment = "standard";
  int64_t crop_padding = 4;
};

struct OpenedData {
  DatasetSplits splits;  // splits.train is null for a folder opened for evaluation only
  int64_t channels, input_size, num_classes;
  Compose train_transform, test_transform;
  InputContract contract;  // what a model trained on this data records (test_transform is built from it)
};

// Opens the named dataset, keeps the first limit_train/limit_test samples, and builds the
// train and test pipelines (padding or resizing to input_size, the chosen augmentation,
// normalisation). With `expected` (a checkpoint's contract) the data must match it — channels,
// size and classes, refused with one message otherwise — and the test pipeline is the contract's:
// its statistics, not re-measured ones. Errors name the flag a command line sets the field with.
OpenedData open_data(const DataChoice& choice, const InputContract* expected = nullptr);

// The training split, or an error naming `command` when the data has none (a folder opened for
// evaluation only).
const std::shared_ptr<const Dataset>& training_images(const OpenedData& data, const std::string& command);

// The model's input shape for one image, {1, C, S, S}.
Shape image_shape(const OpenedData& data);

}  // namespace shears::data
