// What `shears prune` and `shears sweep` share: the pruning flags (pipeline/prune_settings.hpp
// translates them) and fine-tuning with a progress display.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/session.hpp"
#include "pipeline/prune_settings.hpp"
#include "prune/methods/registry.hpp"
#include "prune/metrics.hpp"
#include "train/loop.hpp"

namespace shears::app {

using FineTune = train::FineTuneOptions;
using pipeline::check_method;
using pipeline::PruneSpec;
using prune::count_size;
using prune::layer_densities;
using prune::LayerDensity;
using prune::SizeCounts;
using prune::total_sparsity;

// The flags of PruneSpec but --method/--sparsity (prune takes one of each, sweep lists).
void add_prune_flags(CLI::App& cli, PruneSpec& spec);
// Before anything is read: no flag given would be ignored (--importance, --fold-bn, --group-index
// and --round-to without --structured).
void check_structured_flags(const CLI::App& cli, const PruneSpec& spec);

// pipeline::prune_context with the stages' fine-tuning displayed and stage lines printed.
prune::PruneContext prune_context(const PruneSpec& spec, const OpenedData& data);

void add_finetune_flags(CLI::App& cli, FineTune& ft);

// A progress bar and one line per epoch for train::fine_tune.
train::FineTuneHooks fine_tune_display(int64_t epochs);

}  // namespace shears::app
