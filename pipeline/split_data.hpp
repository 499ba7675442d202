// Split-data training's second half (docs/algorithms/intra-fusion.md#split-data-paf-and-fap): K
// models, each trained on its own part of the training set, combined four ways and each
// combination evaluated on the test set as is and after fine-tuning on the whole training set:
//   naive  the plain average of the K models (no alignment), the baseline;
//   ot     OT fusion: models 1..K-1 aligned to model 0, then averaged (prune/algorithms/model_fusion.hpp);
//   paf    prune, then fuse: each model pruned by Intra-Fusion (l1 importance, the same channel
//          sparsity in every group, so the pruned models share widths), then OT-fused;
//   fap    fuse, then prune: the OT-fused model pruned by Intra-Fusion the same way.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/prepare.hpp"
#include "nn/module.hpp"
#include "train/evaluate.hpp"
#include "train/loop.hpp"

namespace shears::pipeline {

struct SplitDataOptions {
  double sparsity = 0.5;            // PaF and FaP: channels removed per group
  // BatchNorm re-estimation of every combination on this many training batches of
  // finetune.batch_size (prune/bn_recalibrate.hpp), before fine-tuning; 0: off. Networks without
  // BatchNorm skip it.
  int64_t bn_batches = 20;
  train::FineTuneOptions finetune;  // epochs 0: no fine-tuning
  train::FineTuneHooks finetune_hooks;
  uint64_t seed = 0;
  int workers = 2;  // test loader threads
  std::function<void(const std::string&)> log;
};

struct SplitDataRow {
  std::string name;
  int64_t parameters = 0;
  train::EvalResult before;
  std::optional<train::EvalResult> recalibrated;  // after BatchNorm re-estimation, when it ran
  std::optional<train::EvalResult> after;         // fine-tuned
  std::optional<double> combine_seconds;   // fusion and pruning (the parts have none)
  double finetune_seconds = 0, train_seconds = 0;
};

// Rows for each part (trained in `train_seconds[k]`), then naive, ot, paf and fap; each
// combination is saved as folder/<name>.safetensors.
std::vector<SplitDataRow> combine_split_parts(const std::vector<std::shared_ptr<nn::Module>>& parts,
                                              const std::vector<double>& train_seconds, const data::OpenedData& data,
                                              const std::filesystem::path& folder, const SplitDataOptions& options);

// folder/split_data.csv: a row per model.
void write_split_table(const std::filesystem::path& folder, const std::vector<SplitDataRow>& rows);

}  // namespace shears::pipeline
