#include "data/prepare.hpp"

#include <filesystem>
#include <numeric>

#include "core/error.hpp"

namespace shears::data {

namespace {

std::shared_ptr<const Dataset> first(const std::shared_ptr<const Dataset>& d, int64_t n) {
  if (!d || n <= 0 || n >= d->size()) return d;
  std::vector<int64_t> indices(n);
  std::iota(indices.begin(), indices.end(), 0);
  return std::make_shared<Subset>(d, std::move(indices));
}

// The dataset --data names, or a checkpoint's, or --data-dir's format, or Fashion-MNIST. A folder
// given for a checkpoint trained on an image folder is read as one (its split folders, or its
// class folders alone).
std::string dataset_name(const DataChoice& choice, const InputContract* expected, std::string& dir) {
  const std::string& given = choice.data.empty() ? choice.data_dir : choice.data;
  if (expected && expected->dataset == "image-folder") {
    SHEARS_CHECK(!given.empty(), "--data",
                 "the checkpoint was trained on an image folder: give the folder to evaluate on (--data DIR)");
    std::error_code ec;
    if (std::filesystem::is_directory(given, ec)) {
      dir = given;
      return "image-folder";
    }
  }
  if (!choice.data.empty()) return choice.data;
  if (expected) return expected->dataset;
  return choice.data_dir.empty() ? "fashion-mnist" : choice.data_dir;
}

OpenOptions open_options(const DataChoice& choice, const InputContract* expected, int64_t channels, int64_t size) {
  OpenOptions options;
  options.dir = choice.data_dir;
  options.seed = choice.seed;
  options.val_fraction = choice.val_fraction;
  options.image_folder = {
      .channels = channels ? channels : 3, .max_pixels = choice.max_image_pixels, .cache_bytes = choice.cache_mb << 20};
  options.train_split = choice.train_split;
  options.test_split = choice.val_split;
  if (expected) {
    options.classes = expected->classes;
    options.measure_stats = false;  // the checkpoint's are used
  }
  const int64_t side = size ? size : 32;
  options.stats_view = {side, side, choice.crop_pct, parse_interpolation(choice.interpolation, "--interpolation")};
  return options;
}

// The contract of the data as opened: its statistics (or the flags'), size and eval resize.
InputContract contract_of(const OpenedData& d, const DataChoice& choice, int64_t stored_side, bool folder) {
  InputContract c;
  c.dataset = d.splits.name;
  c.channels = d.channels;
  c.height = c.width = d.input_size;
  c.mean = choice.mean.empty() ? d.splits.mean : choice.mean;
  c.std = choice.std.empty() ? d.splits.std : choice.std;
  if (c.mean.size() == 1 && d.channels == 3) c.mean.assign(3, c.mean[0]);  // a gray source shown as RGB
  if (c.std.size() == 1 && d.channels == 3) c.std.assign(3, c.std[0]);
  SHEARS_CHECK(static_cast<int64_t>(c.mean.size()) == d.channels && c.std.size() == c.mean.size(), "--mean/--std",
               "expected one value per channel (", d.channels, "), got ", c.mean.size(), " and ", c.std.size());
  c.classes = (d.splits.train ? d.splits.train : d.splits.test)->classes();
  c.resize = folder ? EvalResize::resize_crop : d.input_size > stored_side ? EvalResize::pad : EvalResize::none;
  c.pad = (d.input_size - stored_side) / 2;
  c.crop_pct = choice.crop_pct;
  c.interpolation = parse_interpolation(choice.interpolation, "--interpolation");
  return c;
}

std::string list(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < 12; ++i) text += (i ? ", '" : "'") + names[i] + "'";
  return text + (names.size() > 12 ? ", ..." : "");
}

// The data against the checkpoint's contract: one message for the first difference.
void check_contract(const OpenedData& d, const InputContract& expected, const std::string& data, bool folder) {
  SHEARS_CHECK(!folder || expected.resize == EvalResize::resize_crop, "--data " + data, "the checkpoint takes ",
               expected.dataset, "'s ", expected.height - 2 * expected.pad, "x", expected.width - 2 * expected.pad,
               " images as stored (trained without a resize); an image folder's photos of many sizes do not fit it");
  SHEARS_CHECK(d.channels == expected.channels && d.input_size == expected.height, "--data " + data,
               "the checkpoint takes ", expected.channels, "x", expected.height, "x", expected.width,
               " images (trained on ", expected.dataset, "), this data gives ", d.channels, "x", d.input_size, "x",
               d.input_size, " (--in-channels, --input-size)");
  SHEARS_CHECK(d.contract.classes == expected.classes, "--data " + data, "the checkpoint's ", expected.classes.size(),
               " classes (", list(expected.classes), ", trained on ", expected.dataset, ") are not this data's ",
               d.contract.classes.size(), " (", list(d.contract.classes), ")");
}

// The training pipeline before its normalisation: the resize or padding, then the augmentation.
std::vector<Transform> augmentation(const OpenedData& d, const DataChoice& choice, bool folder) {
  const int64_t size = d.input_size;
  std::vector<Transform> steps;
  if (folder) {
    if (choice.augment == "standard")
      steps = {RandomResizedCrop{.height = size, .width = size, .interpolation = d.contract.interpolation},
               RandomHorizontalFlip{}};
    else
      steps = {ResizeCenterCrop{size, size, d.contract.crop_pct, d.contract.interpolation}};
  } else if (d.contract.resize == EvalResize::pad) {  // e.g. Fashion-MNIST 28×28 padded to 32×32
    steps = {Pad{Padding(d.contract.pad)}};
  }
  if (choice.augment == "crop-flip") {
    steps.push_back(RandomCrop(size, Padding(choice.crop_padding)));
    steps.push_back(RandomHorizontalFlip{});
  }
  if (!folder && choice.augment == "standard") {  // the dataset's usual augmentation (CIFAR's crop and flip)
    const Compose usual = standard_transforms(d.splits, true);
    steps.insert(steps.end(), usual.transforms.begin(), usual.transforms.end() - 2);  // not its normalisation
  }
  return steps;
}

}  // namespace

OpenedData open_data(const DataChoice& choice, const InputContract* expected) {
  SHEARS_CHECK(choice.augment == "standard" || choice.augment == "crop-flip" || choice.augment == "none", "--augment",
               "expected standard, crop-flip or none, got '", choice.augment, "'");
  SHEARS_CHECK(choice.crop_padding >= 0, "--crop-padding", "must be at least 0, got ", choice.crop_padding);
  SHEARS_CHECK(choice.channels == 0 || choice.channels == 1 || choice.channels == 3, "--in-channels",
               "expected 1 or 3, got ", choice.channels);
  SHEARS_CHECK(choice.crop_pct >= kMinCropPct && choice.crop_pct <= 1, "--crop-pct", "expected a value in [",
               kMinCropPct, ", 1], got ", choice.crop_pct);
  for (float v : choice.std) SHEARS_CHECK(v > 0.f, "--std", "every value must be positive, got ", v);
  std::string dir = choice.data_dir;
  const std::string name = dataset_name(choice, expected, dir);
  const int64_t channels = choice.channels ? choice.channels : expected ? expected->channels : 0;
  const int64_t size = choice.input_size ? choice.input_size : expected ? expected->height : 0;
  OpenOptions options = open_options(choice, expected, channels, size);
  options.dir = dir;
  OpenedData d{open_dataset(name, options), 0, 0, 0, {}, {}, {}};
  SHEARS_CHECK(d.splits.test != nullptr, "--data " + name, "has no test split to evaluate on");
  d.splits.train = first(d.splits.train, choice.limit_train);
  d.splits.test = first(d.splits.test, choice.limit_test);
  const Shape shape = d.splits.test->image_shape();
  const bool folder = shape[1] == 0;  // images of many sizes
  SHEARS_CHECK(folder || shape[1] == shape[2], "--data " + name, "images must be square, got ", shape[1], "x",
               shape[2]);
  d.channels = channels ? channels : shape[0];
  SHEARS_CHECK(folder || d.channels == shape[0] || shape[0] == 1, "--in-channels", name, " has ", shape[0],
               " channels: only a 1-channel dataset or an image folder converts, got ", d.channels);
  d.input_size = size ? size : folder ? 32 : shape[1];
  SHEARS_CHECK(folder || (d.input_size >= shape[1] && (d.input_size - shape[1]) % 2 == 0), "--input-size",
               "must be the dataset's size (", shape[1], ") or larger by an even amount, got ", d.input_size);
  if (d.splits.mean.empty() && expected) {  // not measured: the checkpoint's
    d.splits.mean = expected->mean;
    d.splits.std = expected->std;
  }
  d.contract = contract_of(d, choice, shape[1], folder);
  d.num_classes = static_cast<int64_t>(d.contract.classes.size());
  if (expected) {
    check_contract(d, *expected, name, folder);
    d.contract = *expected;
    if (!choice.mean.empty()) d.contract.mean = choice.mean;
    if (!choice.std.empty()) d.contract.std = choice.std;
  }
  d.test_transform = eval_transform(d.contract);
  d.train_transform.transforms = augmentation(d, choice, folder);
  for (Transform& step : normalization(d.contract).transforms) d.train_transform.transforms.push_back(std::move(step));
  if (!folder && d.channels != shape[0]) {  // a gray dataset shown as RGB
    for (auto* pipeline : {&d.train_transform.transforms, &d.test_transform.transforms})
      pipeline->insert(pipeline->end() - 2, ToChannels{d.channels});
  }
  return d;
}

const std::shared_ptr<const Dataset>& training_images(const OpenedData& data, const std::string& command) {
  SHEARS_CHECK(data.splits.train != nullptr, command, data.splits.name,
               " has no training split here (a folder opened for evaluation only); ", command, " needs one");
  return data.splits.train;
}

Shape image_shape(const OpenedData& d) { return {1, d.channels, d.input_size, d.input_size}; }

}  // namespace shears::data
