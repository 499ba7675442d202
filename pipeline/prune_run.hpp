// `shears prune` as a library function: evaluate a model on the test split, prune it with a
// registry method, evaluate it again, optionally fine-tune it with the masks fixed, and measure
// what pruning bought (parameters and MACs, all and nonzero; latency of one test batch, the dense
// and pruned models alternating; per-layer sparsity). write_prune_outputs keeps the pruned
// checkpoint and metrics.json in ShrinkBench's vocabulary (docs/design.md#pruning-metrics).
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/prepare.hpp"
#include "nn/module.hpp"
#include "nn/sparsify.hpp"
#include "prune/methods/registry.hpp"
#include "prune/metrics.hpp"
#include "train/evaluate.hpp"
#include "train/loop.hpp"

namespace shears::pipeline {

struct PruneRunOptions {
  std::string method;  // a row of prune::pruning_methods()
  prune::PruneContext context;
  int64_t bn_batches = 0;           // BatchNorm re-estimation after pruning (prune::prune_model)
  train::FineTuneOptions finetune;  // epochs 0: no fine-tuning
  train::FineTuneHooks finetune_hooks;
  uint64_t seed = 0;  // the test loader's and fine-tuning's
  int workers = 2;    // test loader threads
  int64_t latency_runs = 10;
  nn::SparsifyOptions sparse;  // the pruned model runs sparse where this says (evaluation, fine-tuning, latency)
  // After each evaluation: "dense", "pruned", then "fine-tuned" if it runs.
  std::function<void(const std::string& label, const train::EvalResult&)> evaluated;
};

// One Conv2d's or Linear's forward (median ms of a test batch), dense and pruned, with the pruned
// layer's density and whether it ran sparse.
struct LayerTime {
  std::string name;  // the weight's dotted name
  double density = 1, dense_ms = 0, pruned_ms = 0;
  bool sparse = false;
};
// Per-layer forward times of two models of the same architecture (core/profile.hpp's per-layer
// entries), `runs` forwards of `images` each after one to warm up.
std::vector<LayerTime> time_layers(nn::Module& dense, nn::Module& pruned, const std::vector<nn::SparseChoice>& choices,
                                   const Tensor& images, int64_t runs);

struct PruneOutcome {
  train::EvalResult dense, pruned, final_eval;  // final_eval: fine-tuned if it ran, else pruned
  prune::SizeCounts dense_counts, counts;
  prune::Latency dense_latency, latency;
  int64_t latency_batch = 0;  // images in the timed batch
  std::vector<prune::LayerDensity> layers;
  std::vector<LayerTime> layer_times;  // Conv2d and Linear forwards, dense model against pruned
  double prune_seconds = 0;
  double compression() const;          // size / size_nz
  double theoretical_speedup() const;  // macs / macs_nz
  double measured_speedup() const;     // dense median latency / pruned median latency
};

// Prunes `model` in place; the dense model is kept aside for the comparisons.
PruneOutcome prune_and_measure(nn::Module& model, const data::OpenedData& data, const PruneRunOptions& options);

// metrics.json uses ShrinkBench's vocabulary (docs/design.md#pruning-metrics): `size` and `flops`
// are the dense model's (before pruning), `size_nz` and `flops_nz` the pruned model's nonzero
// parameters and FLOPs, so that `compression_ratio` = size / size_nz and
// `theoretical_speedup` = flops / flops_nz compare the two for masks and channel removal alike.
// FLOPs = 2 × MACs, per image, Conv2d and Linear only (nn/summary.hpp); `macs`/`macs_nz` are given
// too. `loss`, `acc1`, `acc5` are the final model's (fine-tuned if it ran), on the
// test split, accuracies in percent; `dense`, `pruned` and `finetuned` hold the three evaluations.
// `sparsity` is the fraction of zeros among all Conv2d/Linear weights of the dense model (removed
// channels count as zeros), `layers` the same per tensor. `latency_ms` times a forward of one test
// batch (median, std; the two models alternate).
//
// What metrics.json says of the run besides the outcome.
struct PruneRecord {
  std::string weights;      // the dense checkpoint
  std::string method;       // "structured", "intrafusion" or the unstructured method
  std::string description;  // the checkpoint's "pruning" metadata, e.g. "channels by l1"
  std::string distribution;
  double target_sparsity = 0;
  bool structured = false;
  std::string importance;  // structured only
  int64_t finetune_epochs = 0;
  bool sparse_file = false;  // pruned.safetensors with its masked weights compressed (nn/sparse_checkpoint.hpp)
};

// folder/pruned.safetensors and folder/metrics.json; returns the checkpoint's size in bytes and
// that of the same model written dense (for the comparison).
std::pair<int64_t, int64_t> write_prune_outputs(const std::filesystem::path& folder, const nn::Module& model,
                                                const std::string& dataset, const PruneOutcome& outcome,
                                                const PruneRecord& record);

}  // namespace shears::pipeline
