#include "train/loop.hpp"

#include <chrono>
#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/random.hpp"
#include "train/evaluate.hpp"

namespace shears::train {

Trainer::Trainer(nn::Module& model, optim::Optimizer& optimizer, LoopOptions options)
    : model_(model), optimizer_(optimizer), options_(std::move(options)), params_(model.named_parameters()) {}

EpochStats Trainer::train_epoch(data::DataLoader& loader, int64_t epoch) {
  default_generator().seed(options_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) +
                           (options_.stream << 32));  // dropout: f(seed, epoch, stream)
  model_.train();
  loader.start_epoch(epoch);
  const int64_t steps = loader.num_batches();
  if (options_.hooks.epoch_start) options_.hooks.epoch_start(epoch, steps);
  EpochStats stats{.epoch = epoch};
  const auto start = std::chrono::steady_clock::now();
  while (auto batch = loader.next()) {
    if (options_.lr_factor) optimizer_.scale_lr(options_.lr_factor(epoch, stats.steps));
    const bool stop = step(*batch, stats, steps);
    ++stats.steps;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options_.hooks.step) options_.hooks.step(stats);
    if (stop) {
      stats.stopped = true;
      break;
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

// One step; returns after_backward's wish to stop. (Gradients are averaged before the check, so
// every rank finds the same.)
bool Trainer::step(const Batch& batch, EpochStats& stats, int64_t steps_per_epoch) {
  Tensor logits = model_(batch.images);
  Tensor loss = cross_entropy(logits, batch.labels, options_.label_smoothing);
  const float value = loss.item();
  optimizer_.zero_grad();
  loss.backward();
  const bool stop = options_.after_backward && options_.after_backward();
  if (optim::NonFinite bad = optim::check_finite(value, params_); !bad.problem.empty()) {
    const bool gave_up = ++run_of_skips_ >= steps_per_epoch;
    bad.problem = detail::concat("epoch ", stats.epoch + 1, ", step ", stats.steps + 1, ": ", bad.problem);
    const NonFinitePolicy& policy = options_.nonfinite;
    if (!policy.skip || !bad.skippable || gave_up)
      throw Error(policy.explain ? policy.explain(bad.problem, gave_up) : bad.problem);
    if (stats.skipped++ == 0 && options_.hooks.log)
      options_.hooks.log("\nskipping the step: " + bad.problem + " (further skips this epoch are counted)");
    return stop;
  }
  run_of_skips_ = 0;
  if (options_.clip_grad > 0) optim::clip_grad_norm(params_, options_.clip_grad);
  optimizer_.step();
  const int64_t n = logits.size(0);
  stats.loss_sum += value * n;
  stats.correct += count_topk(logits, batch.labels, 1);
  stats.seen += n;
  return stop;
}

void fine_tune(nn::Module& model, const FineTuneOptions& options, std::shared_ptr<const data::Dataset> train_split,
               const data::Compose& transform, uint64_t seed, const FineTuneHooks& hooks) {
  optim::Sgd opt(optim::decay_groups(model.named_parameters(), options.lr, options.weight_decay, true),
                 {options.lr, options.momentum, 0.0, options.weight_decay, false});
  const int64_t samples = train_split->size();
  data::DataLoader loader(std::move(train_split), transform, {options.batch_size, true, true, seed, 2, 2});
  const int64_t iters = loader.num_batches();
  SHEARS_CHECK(iters > 0, "fine-tune", "the training set (", samples, " samples) is smaller than one batch of ",
               options.batch_size);
  LoopOptions loop;
  loop.seed = seed;
  loop.hooks = hooks.loop;
  if (options.cosine)
    loop.lr_factor = [&](int64_t epoch, int64_t step) {
      const double t = static_cast<double>(epoch * iters + step) / (options.epochs * iters);
      return 0.5 * (1 + std::cos(std::numbers::pi * t));
    };
  loop.nonfinite.explain = [&](const std::string& problem, bool) {
    return detail::concat("fine-tune: ", problem, ". Hint: lower --lr (now ", options.lr, ")");
  };
  Trainer trainer(model, opt, loop);
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const EpochStats stats = trainer.train_epoch(loader, epoch);
    if (hooks.epoch_end) hooks.epoch_end(stats);
  }
  model.eval();
}

}  // namespace shears::train
