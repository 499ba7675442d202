#include "apps/session.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/autograd.hpp"
#include "core/config_file.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "nn/models/registry.hpp"

namespace shears::app {

namespace {

// --input-size S or C H W (timm's form; H = W: the zoo's models take square images).
void set_input_size(DataChoice& choice, const std::vector<int64_t>& values) {
  SHEARS_CHECK(values.size() == 1 || values.size() == 3, "--input-size", "expected S or C H W, got ", values.size(),
               " values");
  for (int64_t v : values) SHEARS_CHECK(v >= 0 && v <= 65536, "--input-size", "values in [0, 65536], got ", v);
  if (values.size() == 3) {
    SHEARS_CHECK(values[1] == values[2], "--input-size", "the models take square images: H = W, got ", values[1], "x",
                 values[2]);
    choice.channels = values[0];
  }
  choice.input_size = values.back();
}

void add_image_folder_flags(CLI::App& cli, DataChoice& choice) {
  cli.add_option("--crop-pct", choice.crop_pct,
                 "image folders: evaluation crop, the shorter side resized to size / crop-pct")
      ->capture_default_str();
  cli.add_option("--interpolation", choice.interpolation, "image folders: bilinear or bicubic")
      ->capture_default_str()
      ->check(CLI::IsMember({"bilinear", "bicubic"}));
  cli.add_option("--train-split", choice.train_split, "image folders: the training split's folder")
      ->capture_default_str();
  cli.add_option("--val-split", choice.val_split,
                 "image folders: the test split's folder (default: val, validation or test)");
  cli.add_option("--image-cache-mb", choice.cache_mb, "image folders: decoded images kept in memory (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cli.add_option("--mean", choice.mean, "per-channel mean on the [0, 1] scale (default: the dataset's or checkpoint's)")
      ->delimiter(',');
  cli.add_option("--std", choice.std, "per-channel std on the [0, 1] scale")->delimiter(',');
}

}  // namespace

void add_data_flags(CLI::App& cli, DataChoice& choice) {
  cli.add_option(
      "--data", choice.data,
      "dataset name or directory (default: the checkpoint's dataset, else --data-dir's, else fashion-mnist)");
  cli.add_option("--data-dir", choice.data_dir, "where the dataset's files are");
  cli.add_option_function<std::vector<int64_t>>(
         "--input-size", [&choice](const std::vector<int64_t>& v) { set_input_size(choice, v); },
         "S or C H W: the model's input (0: the checkpoint's or the dataset's; built-in datasets are padded, "
         "image folders resized and cropped)")
      ->expected(1, 3);
  cli.add_option("--img-size", choice.input_size, "the input side, as --input-size S")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 16));
  cli.add_option("--in-channels", choice.channels, "1 (grayscale) or 3 (RGB); 0: the checkpoint's or the data's")
      ->check(CLI::IsMember({0, 1, 3}));
  add_image_folder_flags(cli, choice);
  cli.add_option("--limit-train", choice.limit_train, "use only the first N training images (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli.add_option("--limit-test", choice.limit_test, "use only the first N test images (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli.add_option("--val-fraction", choice.val_fraction,
                 "hold out this fraction of the training images (seeded) to choose the best epoch on")
      ->capture_default_str();
  cli.add_option("--max-image-pixels", choice.max_image_pixels,
                 "image folders: refuse larger images (width x height pixels)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cli.add_option("--workers", choice.workers, "data loader threads")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{256}));
  cli.add_option(
         "--augment", choice.augment,
         "training augmentation: standard (the dataset's usual: crop and flip on CIFAR, random-resized crop and "
         "flip on image folders, none otherwise), "
         "crop-flip (any dataset) or none")
      ->capture_default_str();
  cli.add_option("--crop-padding", choice.crop_padding, "crop-flip: RandomCrop's padding in pixels")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
}

void add_checkpoint_and_data_flags(CLI::App& cli, std::string& weights, ForeignModel& foreign, DataChoice& choice) {
  cli.add_option("--weights,-w", weights,
                 "a checkpoint written by shears, or a PyTorch state_dict as safetensors (with --model)")
      ->required()
      ->check(CLI::ExistingFile);
  cli.add_option("--model", foreign.model,
                 "weights without shears' metadata (a PyTorch state_dict): their architecture (shears info --models)");
  cli.add_option("--variant", foreign.variant, "with --model: cifar or imagenet")->capture_default_str();
  cli.add_option("--num-classes", foreign.num_classes, "with --model: classes of its head (0: the data's)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cli.add_flag("--non-strict", foreign.non_strict, "with --model: load the tensors that match, list the rest");
  add_data_flags(cli, choice);
}

pipeline::ModelData open_weights(const std::string& weights, const ForeignModel& foreign, const DataChoice& choice) {
  pipeline::ModelData md = pipeline::open_checkpoint(weights, foreign, choice);
  report_load(weights, foreign, md.skipped);
  return md;
}

void report_load(const std::string& weights, const ForeignModel& foreign, const nn::LoadReport& skipped) {
  if (foreign.non_strict)
    std::printf("%s: non-strict load: %s\n", weights.c_str(),
                skipped.ok() ? "every tensor matched" : ("left out " + skipped.describe()).c_str());
}

void apply_official_protocol(CLI::App& cli, const std::string& method, prune::MethodKind kind,
                             const nn::Module* model) {
  const prune::PruningMethod& row = prune::find_method(method, kind);
  std::string with_one;
  for (const prune::PruningMethod& m : prune::pruning_methods())
    if (m.official) with_one += (with_one.empty() ? "" : ", ") + m.name;
  SHEARS_CHECK(row.official, "--protocol", "official: ", row.name, " has no official code to follow (", with_one,
               " have one)");
  const prune::ProtocolSettings settings = row.official->settings(model);
  std::set<std::string> given, set;
  for (const auto& [key, value] : settings)
    if (cli.count("--" + key)) given.insert(key);
  for (const auto& [key, value] : settings)
    if (!given.count(key)) {
      cli.get_option("--" + key)->add_result(value);
      set.insert(key);
    }
  for (const std::string& key : set) cli.get_option("--" + key)->run_callback();
}

std::vector<std::string> unknown_flag_hints(const CLI::App& app, int argc, char** argv) {
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  const CLI::App& command = chosen.empty() ? app : *chosen.front();
  std::vector<std::string> hints;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() < 3) continue;
    const std::string name = arg.substr(2, arg.find('=') - 2);
    if (command.get_option_no_throw("--" + name) || app.get_option_no_throw("--" + name)) continue;
    std::vector<std::string> known;
    for (const CLI::Option* option : command.get_options())
      for (const std::string& flag : option->get_lnames()) known.push_back(flag);
    const std::string best = config::closest_key(name, known);
    hints.push_back("unknown flag --" + name + (best.empty() ? "" : "; did you mean --" + best + "?"));
  }
  return hints;
}

void add_cnn_flags(CLI::App& cli, std::string& cfg, bool& batch_norm, std::string& head) {
  cli.add_option("--cfg", cfg, "cnn: conv widths and M for a 2x2 max-pool (default 16,32,M,64,64)");
  cli.add_flag("--batch-norm", batch_norm, "cnn: BatchNorm after every conv (mlp, mlpnet: after every hidden Linear)");
  cli.add_option("--head", head, "cnn: gap (global average pool, one Linear) or fc (flatten, one Linear)")
      ->capture_default_str();
}

void add_model_shape_flags(CLI::App& cli, int64_t& in_channels, int64_t& input_size, int64_t& num_classes) {
  cli.add_option("--in-channels", in_channels)->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cli.add_option("--input-size", input_size)->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 16));
  cli.add_option("--num-classes", num_classes)->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
}

Progress::Progress(std::string title, int64_t total)
    : title_(std::move(title)), total_(std::max<int64_t>(total, 1)), tty_(isatty(fileno(stdout))),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::update(int64_t done, const std::string& stats) {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = done > 0 ? elapsed * (total_ - done) / done : 0.0;
  if (tty_) {
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    int filled = static_cast<int>(kWidth * done / total_);
    std::printf("\r%s [%s%s] %lld/%lld %s ETA %s\033[K", title_.c_str(), std::string(filled, '#').c_str(),
                std::string(kWidth - filled, '.').c_str(), (long long)done, (long long)total_, stats.c_str(),
                format_duration(eta).c_str());
    std::fflush(stdout);
  } else if (done >= next_line_) {
    std::printf("%s %lld/%lld %s elapsed %s ETA %s\n", title_.c_str(), (long long)done, (long long)total_,
                stats.c_str(), format_duration(elapsed).c_str(), format_duration(eta).c_str());
    std::fflush(stdout);
    next_line_ = done + std::max<int64_t>(1, total_ / 10);
  }
}

void Progress::finish() {
  if (tty_) std::printf("\r\033[K");
}

}  // namespace shears::app
