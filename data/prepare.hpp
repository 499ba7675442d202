// What a run reads: a dataset chosen by name or folder, its limits and augmentation, opened into
// splits and the train and test pipelines a model of matching input size consumes.
#pragma once
#include <cstdint>
#include <string>

#include "data/open_dataset.hpp"

namespace shears::data {

struct DataChoice {
  std::string data = "fashion-mnist";       // --data: a dataset name or a directory
  std::string data_dir;                     // --data-dir
  int64_t input_size = 0;                   // --input-size: 0 keeps the dataset's size; larger pads evenly
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
  DatasetSplits splits;
  int64_t channels, input_size, num_classes;
  Compose train_transform, test_transform;
};

// Opens the named dataset, keeps the first limit_train/limit_test samples, and builds the
// train and test pipelines (padding to input_size, the chosen augmentation, normalisation).
// Errors name the flag a command line sets the field with.
OpenedData open_data(const DataChoice& choice);

// The model's input shape for one image, {1, C, S, S}.
Shape image_shape(const OpenedData& data);

}  // namespace shears::data
