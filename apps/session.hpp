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
#include "data/prepare.hpp"
#include "nn/module.hpp"
#include "pipeline/checkpoint_data.hpp"
#include "pipeline/report.hpp"
#include "prune/methods/registry.hpp"
#include "train/evaluate.hpp"

namespace shears::app {

using data::DataChoice;
using data::image_shape;
using data::open_data;
using data::OpenedData;

// --data, --data-dir, --input-size, --in-channels, the image-folder flags, --limit-train,
// --limit-test, --val-fraction, --max-image-pixels, --workers and --augment, for every command
// that reads a dataset (--seed stays with each command: its meaning differs).
void add_data_flags(CLI::App& cli, DataChoice& choice);
using pipeline::ForeignModel;

// --weights (a checkpoint, required), the foreign-model flags and the data flags, for the commands
// that read a trained model.
void add_checkpoint_and_data_flags(CLI::App& cli, std::string& weights, ForeignModel& foreign, DataChoice& choice);
// pipeline::open_checkpoint, and a non-strict load's skipped tensors printed by name (report_load).
pipeline::ModelData open_weights(const std::string& weights, const ForeignModel& foreign, const DataChoice& choice);
void report_load(const std::string& weights, const ForeignModel& foreign, const nn::LoadReport& skipped);

// --protocol official: the settings of the method's official code (its registry row, for `model`,
// null before training) for every flag the command line left unset; refused for a method without one.
void apply_official_protocol(CLI::App& cli, const std::string& method, prune::MethodKind kind, const nn::Module* model);

// For each flag of argv that the chosen subcommand does not know: "unknown flag --epoch; did you
// mean --epochs?" naming its closest flag (empty when none is close).
std::vector<std::string> unknown_flag_hints(const CLI::App& app, int argc, char** argv);

// --cfg, --batch-norm and --head: the configuration of a cnn (nn/models/vgg.hpp).
void add_cnn_flags(CLI::App& cli, std::string& cfg, bool& batch_norm, std::string& head);

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

using pipeline::format_duration;

}  // namespace shears::app
