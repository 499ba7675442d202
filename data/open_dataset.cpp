#include "data/open_dataset.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.hpp"
#include "data/idx.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string names_list() {
  std::string list;
  for (const auto& n : dataset_names()) list += (list.empty() ? "" : ", ") + n;
  return list;
}

const std::string& require_dir(const std::string& name, const std::string& dir) {
  SHEARS_CHECK(!dir.empty(), "open_dataset", name,
               " has no installed copy: give the directory holding its files (--data-dir)");
  SHEARS_CHECK(is_directory(dir), "open_dataset", dir, ": no such directory (for ", name, ")");
  return dir;
}

// The split folder `name` of dir, or "" when it has none.
std::string split_dir(const std::string& dir, const std::string& name) {
  const std::string path = (fs::path(dir) / name).string();
  return !name.empty() && is_directory(path) ? path : "";
}

// The test split: the one named, else the first of val, validation and test.
std::string test_split_dir(const std::string& dir, const OpenOptions& options) {
  if (!options.test_split.empty()) {
    const std::string named = split_dir(dir, options.test_split);
    SHEARS_CHECK(!named.empty(), "open_dataset", dir, ": no split folder '", options.test_split, "' (--val-split)");
    return named;
  }
  for (const char* name : {"val", "validation", "test"})
    if (std::string found = split_dir(dir, name); !found.empty()) return found;
  return "";
}

// Training images from the train split, test images labelled by its classes; without a train
// split, only the test images, labelled by options.classes.
TrainTest open_image_folders(const std::string& dir, const OpenOptions& options) {
  TrainTest parts;
  const std::string train = split_dir(dir, options.train_split), test = test_split_dir(dir, options);
  if (!train.empty()) {
    parts.train = load_image_folder(train, options.image_folder);
    if (!test.empty()) parts.test = load_image_folder(test, options.image_folder, parts.train->classes());
    return parts;
  }
  SHEARS_CHECK(!options.classes.empty(), "open_dataset", dir, ": an image-folder dataset needs ", options.train_split,
               "/<class>/<image> (and optionally val/, validation/ or test/) in it; a folder to evaluate "
               "alone needs a checkpoint that names its classes");
  parts.test = load_image_folder(test.empty() ? dir : test, options.image_folder, options.classes);
  return parts;
}

// The format a directory holds, as a dataset name.
std::string detect(const std::string& dir) {
  if (has_idx_files(dir)) return "idx";
  if (has_cifar10_files(dir)) return "cifar10";
  if (has_cifar100_files(dir)) return "cifar100";
  for (const char* split : {"train", "val", "validation", "test"})
    if (is_directory((fs::path(dir) / split).string())) return "image-folder";
  throw Error(detail::concat(
      "open_dataset: ", dir,
      ": no dataset recognised: expected the four IDX files (train-images-idx3-ubyte[.gz] "
      "...), CIFAR-10's data_batch_*.bin, CIFAR-100's train.bin or an image folder train/<class>/ (or val/, "
      "validation/, test/)"));
}

TrainTest load(const std::string& name, const std::string& dir, const OpenOptions& options) {
  if (name == "fashion-mnist") return load_fashion_mnist(dir.empty() ? kFashionMnistDir : dir);
  if (name == "mnist" || name == "idx") return load_idx_folder(require_dir(name, dir), {}, options.max_bytes);
  if (name == "cifar10") return load_cifar10(require_dir(name, dir), options.max_bytes);
  if (name == "cifar100") return load_cifar100(require_dir(name, dir), options.cifar100_labels, options.max_bytes);
  if (name == "image-folder") return open_image_folders(require_dir(name, dir), options);
  SHEARS_ASSERT(name == "synthetic");
  return make_synthetic(options.synthetic);
}

struct Stats {
  std::vector<float> mean, std;
};

// The published per-channel statistics of each training set.
std::optional<Stats> published_stats(const std::string& name) {
  static const std::map<std::string, Stats> published{
      {"fashion-mnist", {{0.2860f}, {0.3530f}}},
      {"mnist", {{0.1307f}, {0.3081f}}},
      {"cifar10", {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}},
      {"cifar100", {{0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}}},
  };
  auto it = published.find(name);
  if (it == published.end()) return std::nullopt;
  return it->second;
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"fashion-mnist", "mnist",        "idx",      "cifar10",
                                              "cifar100",      "image-folder", "synthetic"};
  return names;
}

DatasetSplits open_dataset(const std::string& name_or_dir, const OpenOptions& options) {
  DatasetSplits splits;
  std::string dir = options.dir;
  const auto& names = dataset_names();
  if (std::find(names.begin(), names.end(), name_or_dir) != names.end()) {
    splits.name = name_or_dir;
  } else {
    SHEARS_CHECK(is_directory(name_or_dir), "open_dataset", "unknown dataset '", name_or_dir, "': expected one of ",
                 names_list(), ", or a directory holding one");
    dir = name_or_dir;
    splits.name = detect(dir);
  }
  TrainTest parts = load(splits.name, dir, options);
  splits.train = parts.train;
  splits.test = parts.test;

  if (options.val_fraction > 0.0) {
    SHEARS_CHECK(splits.train, "open_dataset", "val_fraction ", options.val_fraction, ": ", dir,
                 " has no training images to hold a part of out");
    const int64_t n = splits.train->size();
    const auto n_val = static_cast<int64_t>(std::llround(options.val_fraction * static_cast<double>(n)));
    SHEARS_CHECK(options.val_fraction < 1.0 && n_val > 0 && n_val < n, "open_dataset", "val_fraction ",
                 options.val_fraction, " of ", n, " training samples leaves ", n_val,
                 " for validation: both parts must be non-empty");
    auto parts_of_train = random_split(splits.train, {n - n_val, n_val}, options.seed);
    splits.train = parts_of_train[0];
    splits.val = parts_of_train[1];
  }
  if (!splits.test) splits.test = splits.val;

  std::optional<Stats> stats = published_stats(splits.name);
  if (!stats && (!splits.train || !options.measure_stats)) return splits;
  if (!stats) {
    const bool folder = splits.name == "image-folder";
    ChannelStats measured =
        channel_stats(*splits.train, 1.0 / 255.0, folder ? Compose{{options.stats_view}} : Compose{},
                      folder ? options.stats_samples : 0);
    stats = Stats{{measured.mean.begin(), measured.mean.end()}, {measured.std.begin(), measured.std.end()}};
  }
  splits.mean = std::move(stats->mean);
  splits.std = std::move(stats->std);
  return splits;
}

Compose standard_transforms(const DatasetSplits& splits, bool train, bool to_rgb) {
  Compose pipeline;
  if (train && (splits.name == "cifar10" || splits.name == "cifar100")) {
    pipeline.transforms.push_back(RandomCrop(32, 4));
    pipeline.transforms.push_back(RandomHorizontalFlip{});
  }
  std::vector<float> mean = splits.mean, std = splits.std;
  if (to_rgb && splits.train->image_shape()[0] == 1) {
    pipeline.transforms.push_back(ToChannels{3});
    mean.assign(3, mean[0]);
    std.assign(3, std[0]);
  }
  pipeline.transforms.push_back(ToFloat{});
  pipeline.transforms.push_back(Normalize{mean, std});
  return pipeline;
}

}  // namespace shears::data
