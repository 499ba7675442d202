// `shears sweep` as a library function: every method × sparsity × seed on one dense model. Each
// cell prunes a fresh copy (prune::prune_model, then optional fine-tuning with the masks fixed),
// evaluates it on the test split and appends one row to sweep.csv at once, so an interrupted or
// extended sweep resumes where it stopped: cells already in the file are skipped. The settings
// that change a cell's result besides its method, sparsity and seed are kept in sweep.json, and a
// rerun with other settings is refused rather than mixed into the same table.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/prepare.hpp"
#include "nn/module.hpp"
#include "nn/sparsify.hpp"
#include "pipeline/sweep_table.hpp"
#include "prune/methods/registry.hpp"
#include "train/evaluate.hpp"
#include "train/loop.hpp"

namespace shears::pipeline {

// A sweep's method label: a masks method of the registry; with `structured`, a channel importance
// (plain channel removal) or "intrafusion:<importance>" (Intra-Fusion with that importance).
struct SweepMethod {
  std::string label, method, importance;
};
// Refuses a label the registries do not know, naming the known ones.
SweepMethod sweep_method(const std::string& label, bool structured);
// The registry name a label is checked against: the method, or the importance when structured.
std::string sweep_criterion(const std::string& label, bool structured);

struct SweepOptions {
  std::vector<std::string> methods;  // labels (sweep_method)
  bool structured = false;
  std::vector<double> sparsities;
  int64_t seeds = 1;  // first_seed, first_seed + 1, …
  uint64_t first_seed = 0;
  prune::PruneContext context;  // each cell's target sparsity, seed and importance are set from it
  int64_t bn_batches = 0;
  nn::SparsifyOptions sparse;       // each pruned model runs sparse where this says
  train::FineTuneOptions finetune;  // epochs 0: no fine-tuning
  train::FineTuneHooks finetune_hooks;
  int workers = 2;                  // test loader threads
  nlohmann::ordered_json settings;  // what every row shares, compared with sweep.json
};

struct SweepCell {
  std::string method;
  double sparsity = 0;
  uint64_t seed = 0;
  int64_t index = 0, total = 0;  // 1-based position among all cells
  bool skipped = false;          // already in sweep.csv
  train::EvalResult result;      // when run
  double seconds = 0;
};

struct SweepResult {
  train::EvalResult dense;
  std::vector<SweepRow> rows;  // every row of sweep.csv, earlier runs' included
};

// Refuses unknown method labels, sparsities outside [0, 1] and no seeds.
void check_sweep(const SweepOptions& options);

struct SweepHooks {
  std::function<void(const train::EvalResult&)> dense_evaluated;  // before the first cell
  std::function<void(const SweepCell&)> cell_done;                // after every cell, skipped or run
};

// Runs the sweep into folder/sweep.csv (and sweep.json).
SweepResult run_sweep(const nn::Module& dense, const data::OpenedData& data, const std::filesystem::path& folder,
                      const SweepOptions& options, const SweepHooks& hooks = {});

}  // namespace shears::pipeline
