// The training state for resuming a run, in one safetensors file written atomically and last of
// an epoch's files: the weights (their names prefixed with "model/"), the optimizer state, the
// epoch just finished, the best accuracy so far, every epoch's mean training loss (full precision:
// SFW's dynamic_change lr scheme compares their averages) and the run's settings. A run killed
// between two checkpoint writes (kill -9, power loss) resumes from a consistent state.
#pragma once
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "optim/optimizer.hpp"

namespace shears::train {

struct TrainingProgress {
  int64_t epochs_done = 0;
  double best_top1 = -1.0;
  std::vector<double> epoch_losses;
};

// `config` is the run's settings as a config file (core/config_file.hpp).
void save_training_state(const std::filesystem::path& path, const nn::Module& model, const optim::Optimizer& opt,
                         int64_t epoch, double best_top1, const std::vector<double>& epoch_losses,
                         const std::string& config);

// Restores what save_training_state wrote, after checking that it belongs to this run: a state
// saved by another optimizer, or with settings other than `config` in any key but `may_change`
// (where the run goes and how fast, not what it computes), is refused with what differs.
TrainingProgress load_training_state(const std::filesystem::path& path, nn::Module& model, optim::Optimizer& opt,
                                     const std::string& config, const std::set<std::string>& may_change);

}  // namespace shears::train
