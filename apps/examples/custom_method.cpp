// A pruning method of your own, registered with the library and swept like the built-in ones:
// train MLPNet for two epochs with the library's training loop, register a method (one function
// and one registry row), and run it beside magnitude pruning through pipeline::run_sweep, the
// function `shears sweep` calls. Nothing in shears is edited: the row is added at run time.
//
// The method here ranks each weight by |w| over the root-mean-square of its own tensor, so that a
// layer of small weights is not emptied first by a global ranking (a layer-balanced magnitude).
// It is an example, not an improvement: on Fashion-MNIST it keeps less accuracy than magnitude
// pruning above 50% sparsity, and the sweep shows it.
//
//   build/examples/custom_method [dataset]    (default fashion-mnist; `synthetic` needs no files)
//
// It writes its sweep to runs/custom-method/ (sweep.csv; rerun to resume it).
#include <cmath>
#include <cstdio>
#include <shears/core/error.hpp>
#include <shears/data/prepare.hpp>
#include <shears/nn/models/registry.hpp>
#include <shears/pipeline/sweep.hpp>
#include <shears/prune/masks.hpp>
#include <shears/train/loop.hpp>

using namespace shears;

// The method: scores |w| / rms(w) per tensor, pruned to the target with the library's ranking.
void balanced_magnitude(nn::Module& model, const prune::PruneContext& context) {
  prune::NamedTensors scores;
  for (const std::string& name : prune::prunable_parameters(model, context.scope)) {
    const Tensor w = model.parameter(name);
    double sum = 0;
    for (int64_t i = 0; i < w.numel(); ++i) sum += double(w.data()[i]) * w.data()[i];
    const double rms = std::sqrt(sum / w.numel()) + 1e-12;
    Tensor score = Tensor::zeros(w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) score.data()[i] = static_cast<float>(std::abs(w.data()[i]) / rms);
    scores.emplace_back(name, score);
  }
  prune::apply_masks(model, prune::masks_from_scores(scores, context.target));
}

int main(int argc, char** argv) try {
  prune::register_method({"balanced-magnitude", prune::MethodKind::masks, "|w| over its tensor's rms, ranked globally",
                          balanced_magnitude});

  data::DataChoice choice;
  choice.data = argc > 1 ? argv[1] : "fashion-mnist";
  const data::OpenedData d = data::open_data(choice);
  Generator gen(0);
  auto model = nn::make_model(
      "mlpnet", {.in_channels = d.channels, .num_classes = d.num_classes, .input_size = d.input_size}, gen);
  optim::Sgd sgd(optim::decay_groups(model->named_parameters(), 0.05, 5e-4, true), {.lr = 0.05, .momentum = 0.9});
  data::DataLoader train(d.splits.train, d.train_transform, {.batch_size = 128, .shuffle = true, .drop_last = true});
  train::Trainer trainer(*model, sgd, {});
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const train::EpochStats s = trainer.train_epoch(train, epoch);
    std::printf("epoch %lld: train loss %.4f, top-1 %.2f%%\n", (long long)epoch + 1, s.mean_loss(), s.top1());
  }

  pipeline::SweepOptions sweep;
  sweep.methods = {"magnitude", "balanced-magnitude"};
  sweep.sparsities = {0.5, 0.8, 0.9, 0.95};
  sweep.context.input_shape = data::image_shape(d);
  sweep.context.training_batches = data::batch_factory(d.splits.train, d.train_transform);
  sweep.settings = {{"example", "custom_method"}, {"data", choice.data}};
  pipeline::SweepHooks hooks;
  hooks.cell_done = [](const pipeline::SweepCell& c) {
    if (c.skipped)
      std::printf("%-20s sparsity %.2f: in sweep.csv already\n", c.method.c_str(), c.sparsity);
    else
      std::printf("%-20s sparsity %.2f: top-1 %.2f%%\n", c.method.c_str(), c.sparsity, c.result.top1);
  };
  const pipeline::SweepResult result = pipeline::run_sweep(*model, d, "runs/custom-method", sweep, hooks);
  std::printf("dense top-1 %.2f%%; %zu rows in runs/custom-method/sweep.csv\n", result.dense.top1, result.rows.size());
  return 0;
} catch (const Error& e) {
  std::fprintf(stderr, "custom_method: %s\n", e.what());
  return 1;
}
