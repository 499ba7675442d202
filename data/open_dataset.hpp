// Resolving what the user names (`--data`, `--data-dir`) into datasets, with the per-channel
// statistics Normalize needs and the usual transforms for each source.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/cifar.hpp"
#include "data/dataset.hpp"
#include "data/image_folder.hpp"
#include "data/synthetic.hpp"
#include "data/transforms.hpp"

namespace shears::data {

struct OpenOptions {
  std::string dir;                  // where a named dataset's files are; "" = its default location
  ImageFolderOptions image_folder;  // channels, limits and cache for image folders
  // Image folders' splits: train_split, and test_split or else the first of val, validation and
  // test that exists. Without a train split, a folder opens for evaluation only when `classes`
  // (a checkpoint's) says what its labels are: its test split, or else the folder itself.
  std::string train_split = "train", test_split;
  std::vector<std::string> classes;
  // The images an image folder's statistics are measured on: at most stats_samples training
  // images (evenly spaced) seen through stats_view.
  ResizeCenterCrop stats_view{32, 32};
  int64_t stats_samples = 2048;
  bool measure_stats = true;  // false: mean/std stay empty unless published (a checkpoint brings its own)
  Cifar100Labels cifar100_labels = Cifar100Labels::fine;
  int64_t max_bytes = default_max_bytes();  // IDX files, CIFAR parts: the most their pixels may take
  SyntheticOptions synthetic;  // for "synthetic"
  double val_fraction = 0.0;   // of train held out as val, by random_split with `seed`
  uint64_t seed = 0;
};

struct DatasetSplits {
  std::string name;                                 // the canonical name: one of dataset_names()
  // val null unless val_fraction > 0; train null for a folder opened for evaluation only. A
  // folder with no test split tests on val (its held-out part).
  std::shared_ptr<const Dataset> train, val, test;
  std::vector<float> mean, std;  // per channel on ToFloat's [0, 1] scale; empty without train
};

// `name_or_dir` is a name from dataset_names() or a directory whose format is recognised:
//   fashion-mnist  the Debian package's files (or options.dir)
//   mnist, idx     a folder of four IDX files in options.dir
//   cifar10, cifar100  the binary versions in options.dir
//   image-folder   options.dir/train and options.dir/{val,validation,test} (see OpenOptions)
//   synthetic      make_synthetic(options.synthetic)
// A directory is read as whichever of idx, cifar10, cifar100 or image-folder it holds.
// mean/std are the published values for fashion-mnist, mnist and CIFAR, else measured on train
// (image folders: on OpenOptions' sample and view).
DatasetSplits open_dataset(const std::string& name_or_dir, const OpenOptions& options = {});
const std::vector<std::string>& dataset_names();

// The usual pipeline: for train on CIFAR, RandomCrop(32, padding 4) and RandomHorizontalFlip;
// then ToFloat and Normalize(mean, std). `to_rgb` first repeats a single channel three times
// (with its statistics), e.g. to feed Fashion-MNIST to a model built for RGB.
Compose standard_transforms(const DatasetSplits& splits, bool train, bool to_rgb = false);

}  // namespace shears::data
