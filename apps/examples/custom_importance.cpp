// Your own pruning criterion against shears' prune/ API, in one page: train MLPNet for two epochs,
// score every Linear weight with a criterion of your own, keep the top entries with exact
// sparsity, and compare it to magnitude pruning. Copy this file to start a new algorithm.
//
// The criterion here is Wanda's (Sun et al. 2023): |W_ij| · ‖X_j‖₂, a weight's magnitude times the
// norm of the input feature it multiplies over a few training batches, read with a ForwardObserver.
//
//   build/examples/custom_importance [dataset]    (default fashion-mnist; `synthetic` needs no files)
//
// It includes shears as outside code does (<shears/...>); with shears installed (`make install`):
//   g++ -O2 custom_importance.cpp $(pkg-config --cflags --libs shears) -o custom_importance
#include <cmath>
#include <cstdio>
#include <map>
#include <shears/core/autograd.hpp>
#include <shears/core/error.hpp>
#include <shears/core/ops.hpp>
#include <shears/data/loader.hpp>
#include <shears/data/open_dataset.hpp>
#include <shears/nn/models/registry.hpp>
#include <shears/optim/optimizer.hpp>
#include <shears/prune/algorithms/baselines.hpp>
#include <shears/prune/masks.hpp>
#include <shears/train/evaluate.hpp>
#include <shears/train/loop.hpp>

using namespace shears;

// Top-1 accuracy (%) on a loader: the library's evaluation (eval mode, no gradients).
double accuracy(nn::Module& model, data::DataLoader& loader, int64_t classes) {
  return train::evaluate(model, loader, classes).top1;
}

// The custom criterion: score = |W| ⊙ ‖X_col‖₂ for every named Linear weight.
prune::NamedTensors wanda_scores(nn::Module& model, const std::vector<std::string>& names, data::DataLoader& loader) {
  std::map<const nn::Module*, std::vector<double>> sq;  // Σ x_j² per input feature of each Linear
  {
    nn::ForwardObserver watch([&](const nn::Module& m, const Tensor& x, const Tensor&) {
      if (std::string(m.type_name()) != "Linear") return;
      auto& s = sq[&m];
      s.resize(x.size(1));
      for (int64_t i = 0; i < x.numel(); ++i) s[i % x.size(1)] += double(x.data()[i]) * x.data()[i];
    });
    NoGradGuard no_grad;
    model.eval();
    loader.start_epoch(0);
    for (int b = 0; b < 4; ++b)  // four calibration batches
      if (auto batch = loader.next()) model(batch->images);
  }
  prune::NamedTensors scores;
  for (const std::string& name : names) {
    const nn::Module& layer = model[name.substr(0, name.rfind('.'))];
    Tensor w = model.parameter(name), score = Tensor::zeros(w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) score.data()[i] = std::abs(w.data()[i]) * std::sqrt(sq[&layer][i % w.size(1)]);
    scores.emplace_back(name, score);
  }
  return scores;
}

int main(int argc, char** argv) try {
  data::DatasetSplits splits = data::open_dataset(argc > 1 ? argv[1] : "fashion-mnist");
  auto train_tf = data::standard_transforms(splits, true), test_tf = data::standard_transforms(splits, false);
  data::DataLoader train(splits.train, train_tf, {.batch_size = 128, .shuffle = true, .seed = 0, .num_workers = 2});
  data::DataLoader test(splits.test, test_tf, {.batch_size = 512, .num_workers = 2});
  Shape image = splits.train->image_shape();
  const int64_t classes = splits.train->num_classes();
  Generator gen(0);
  auto model = nn::make_model("mlpnet", {.in_channels = image[0], .num_classes = classes, .input_size = image[1]}, gen);

  optim::Sgd sgd(optim::decay_groups(model->named_parameters(), 0.05, 5e-4, true), {.lr = 0.05, .momentum = 0.9});
  train::Trainer trainer(*model, sgd, {});  // the library's loop: forward, cross-entropy, backward, step
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    trainer.train_epoch(train, epoch);
    std::printf("epoch %lld: test top-1 %.2f%%\n", (long long)epoch + 1, accuracy(*model, test, classes));
  }

  std::vector<std::string> names = prune::prunable_parameters(*model);  // every Linear weight
  for (double sparsity : {0.5, 0.8, 0.9, 0.95}) {
    prune::SparsityTarget target{.sparsity = sparsity};  // global ranking, exactly floor(s·d) zeros
    auto mine = model->clone(), magnitude = model->clone();
    prune::apply_masks(*mine, prune::masks_from_scores(wanda_scores(*mine, names, train), target));
    prune::apply_masks(*magnitude, prune::masks_from_scores(prune::magnitude_scores(*magnitude, names), target));
    std::printf("sparsity %.2f (%.4f measured): wanda %.2f%%   magnitude %.2f%%\n", sparsity,
                prune::sparsity_report(*mine, names).sparsity(), accuracy(*mine, test, classes),
                accuracy(*magnitude, test, classes));
  }
  return 0;
} catch (const Error& e) {
  std::fprintf(stderr, "custom_importance: %s\n", e.what());
  return 1;
}
