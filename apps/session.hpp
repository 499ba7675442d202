// What train, eval and the demo share: opening the data a model needs, running the model over a
// loader, and the terminal display (a progress bar on a TTY, plain periodic lines otherwise).
#pragma once
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "data/open_dataset.hpp"
#include "nn/module.hpp"
#include "train/evaluate.hpp"

namespace shears::app {

struct DataChoice {
  std::string data = "fashion-mnist";  // --data: a dataset name or a directory
  std::string data_dir;                // --data-dir
  int64_t input_size = 0;              // --input-size: 0 keeps the dataset's size; larger pads evenly
  int64_t limit_train = 0, limit_test = 0;  // first N samples only (quick runs); 0: all
  double val_fraction = 0.0;               // of train held out (seeded) for model selection
  int64_t max_image_pixels = data::ImageFolderOptions{}.max_pixels;  // image folders: larger files refused
  int workers = 2;
  uint64_t seed = 0;
  // --augment: the training images' augmentation. "standard": the dataset's usual one (CIFAR:
  // RandomCrop(32, padding 4) and RandomHorizontalFlip; none otherwise); "crop-flip": that crop
  // (--crop-padding pixels, at the input size) and flip for any dataset; "none".
  std::string augment = "standard";
  int64_t crop_padding = 4;
};

struct OpenedData {
  data::DatasetSplits splits;
  int64_t channels, input_size, num_classes;
  data::Compose train_transform, test_transform;
};

OpenedData open_data(const DataChoice& choice);

// --data, --data-dir, --input-size, --limit-train, --limit-test, --val-fraction, --max-image-pixels
// and --workers, for every command that reads a dataset (--seed stays with each command: its
// meaning differs).
void add_data_flags(CLI::App& cli, DataChoice& choice);

// --in-channels, --input-size and --num-classes of a model built without data (bench, info).
void add_model_shape_flags(CLI::App& cli, int64_t& in_channels, int64_t& input_size, int64_t& num_classes);

using train::count_topk;
using train::EvalResult;
using train::evaluate;

class Progress {
 public:
  Progress(std::string title, int64_t total);
  // Redraws the bar (at most a few times a second) or, off a TTY, prints a line every ~10%.
  void update(int64_t done, const std::string& stats);
  void finish();

 private:
  std::string title_;
  int64_t total_, next_line_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);

}  // namespace shears::app
