// One training loop for every caller (`shears train`, fine-tuning after pruning, fine-tuning
// between pruning stages, split-data parts, programs of one's own): a Trainer runs epochs of
// forward, loss, backward and optimizer step over a loader, with the learning-rate factor,
// gradient averaging across ranks, clipping and the non-finite policy as options, and reports
// through hooks (a progress bar, log lines) so that it prints nothing itself.
//
//   train::Trainer trainer(*model, opt, {.lr_factor = [&](int64_t e, int64_t s) { return sched(e, s); }});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     train::EpochStats s = trainer.train_epoch(loader, epoch);
//     train::EvalResult r = train::evaluate(*model, test_loader, num_classes);
//   }
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/loader.hpp"
#include "nn/module.hpp"
#include "optim/optimizer.hpp"

namespace shears::train {

// What an epoch saw: sums over the steps taken (skipped steps count in `skipped` only).
struct EpochStats {
  int64_t epoch = 0, steps = 0, skipped = 0, seen = 0, correct = 0;
  double loss_sum = 0, seconds = 0;
  bool stopped = false;  // after_backward asked to stop: the epoch ended after this step
  double mean_loss() const { return loss_sum / seen; }
  double top1() const { return 100.0 * correct / seen; }
};

struct LoopHooks {
  std::function<void(int64_t epoch, int64_t steps)> epoch_start;
  std::function<void(const EpochStats&)> step;  // after every step, skipped or not
  std::function<void(const std::string&)> log;  // notes such as the first skipped step of an epoch
};

// A step whose loss or gradients are not finite stops the run with an error, unless `skip` and
// the problem allows it (finite weights) and fewer than an epoch's worth of steps in a row were
// skipped. `explain` turns the problem ("epoch E, step S: ...") and whether the skips gave up
// into the error's message; empty: the problem alone.
struct NonFinitePolicy {
  bool skip = false;
  std::function<std::string(const std::string& problem, bool gave_up)> explain;
};

struct LoopOptions {
  float label_smoothing = 0.f;
  double clip_grad = 0.0;  // max global gradient norm; 0: off
  uint64_t seed = 0;       // dropout of epoch e draws from f(seed, e, stream)
  uint64_t stream = 0;     // e.g. the rank, so that the ranks' dropout masks differ
  std::function<double(int64_t epoch, int64_t step)> lr_factor;  // scale_lr before each step; empty: none
  std::function<bool()> after_backward;  // e.g. averages gradients across ranks; true: stop after this step
  NonFinitePolicy nonfinite;
  LoopHooks hooks;
};

class Trainer {
 public:
  Trainer(nn::Module& model, optim::Optimizer& optimizer, LoopOptions options);
  // One epoch over `loader` (its epoch `epoch`, which fixes the shuffle), in train mode.
  EpochStats train_epoch(data::DataLoader& loader, int64_t epoch);

 private:
  // Returns false when the step was skipped.
  bool step(const Batch& batch, EpochStats& stats, int64_t steps_per_epoch);

  nn::Module& model_;
  optim::Optimizer& optimizer_;
  LoopOptions options_;
  optim::NamedTensors params_;
  int64_t run_of_skips_ = 0;  // steps skipped in a row, across epochs
};

// SGD (cosine-decayed lr per step, no weight decay on 1-D tensors) with the masks fixed: masked
// weights have zero value and gradient, so they stay exactly zero. Ends in eval mode.
struct FineTuneOptions {
  int64_t epochs = 0;
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  int64_t batch_size = 128;
  bool cosine = true;  // the lr decays to 0 along a cosine over the epochs; false: constant (the SWAP code's)
};
// The loop's hooks, and `epoch_end` with each epoch's figures (a display of one's own).
struct FineTuneHooks {
  LoopHooks loop;
  std::function<void(const EpochStats&)> epoch_end;
};
// The loop's error on a non-finite step names "fine-tune".
void fine_tune(nn::Module& model, const FineTuneOptions& options, std::shared_ptr<const data::Dataset> train_split,
               const data::Compose& transform, uint64_t seed, const FineTuneHooks& hooks = {});

}  // namespace shears::train
