// What a training run writes into its folder as its epochs finish: a row of summary.csv and an
// event of events.jsonl per epoch, last.safetensors every epoch, best.safetensors when the epoch
// is the best so far, and last (the training state that --resume reads) written last, so that a
// run killed between two writes resumes from a consistent state.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "optim/optimizer.hpp"
#include "train/evaluate.hpp"

namespace shears::train {

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_top1 = 0;
  EvalResult test;
  std::optional<EvalResult> val;  // --val-fraction: the best epoch is chosen on it
  double lr = 0, seconds = 0, images_per_second = 0;
  int64_t skipped_steps = 0;
  int64_t ranks = 1;
  double allreduce_ms = 0;  // per step, with ranks > 1
};

class RunLog {
 public:
  // `writer`: this process writes the files (rank 0 of a distributed run). A fresh run (first
  // epoch 0) starts the logs; a resumed one keeps the rows and events of its first epochs only
  // (a run killed after logging an epoch but before saving its state logs that epoch again).
  RunLog(std::filesystem::path dir, bool writer, int64_t first_epoch, double best_top1);
  // Appends the epoch's row and event, saves last.safetensors and, when the epoch is the best so
  // far, best.safetensors; then the training state with `epoch_losses` and `config`. Returns
  // whether the epoch was the best. An evaluation whose loss is not finite is never the best.
  bool record(const EpochRecord& epoch, const nn::Module& model, const optim::Optimizer& opt,
              const std::vector<double>& epoch_losses, const std::string& config);
  // A closed stdout or stderr never ends a run: the first failed write is noted in events.jsonl.
  void note_output_error(int64_t epoch);
  double best_top1() const { return best_top1_; }
  std::filesystem::path path(const std::string& file) const { return dir_ / file; }

 private:
  void append(const std::string& file, const std::string& line) const;

  std::filesystem::path dir_;
  bool writer_;
  double best_top1_;
  bool output_error_noted_ = false;
};

}  // namespace shears::train
