// `shears sweep`: every method × sparsity × seed on one checkpoint (issue 7). Each cell prunes a
// fresh copy of the dense model (as `shears prune` does, optionally fine-tuning it), evaluates it
// on the test split and appends one row to sweep.csv as soon as it is done, so an interrupted or
// extended sweep resumes where it stopped: cells already in the file are skipped. The settings
// that change a cell's result besides its method, sparsity and seed are kept in sweep.json, and a
// rerun with other settings is refused rather than mixed into the same table. At the end: a table
// of top-1 (mean ± std over seeds) and the accuracy-vs-sparsity plot sweep.svg (and sweep.png).
//
// Seeds are --seed, --seed + 1, …; a seed drives random scores and the choice of the scoring and
// fine-tuning batches (magnitude and synflow without fine-tuning give the same result for every
// seed). With --structured the methods are channel importances (l1, l2, lamp, bn, taylor, random)
// for plain channel removal, and intrafusion:<importance> for Intra-Fusion with that importance,
// so both curves come out of one sweep (add --fold-bn for the reference's default pruning).
#include "pipeline/sweep.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "apps/commands.hpp"
#include "apps/prune_flags.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparsify.hpp"
#include "pipeline/plot.hpp"
#include "pipeline/sweep_table.hpp"

namespace shears::app {

using pipeline::accuracy_plot;
using pipeline::aggregate;
using pipeline::Cell;
using pipeline::kSweepHeader;
using pipeline::LinePlot;
using pipeline::read_sweep_rows;
using pipeline::SweepRow;
using pipeline::Table;
using pipeline::write_plot;

namespace {

namespace fs = std::filesystem;

struct SweepConfig {
  std::string weights, output;
  ForeignModel foreign;
  DataChoice data;
  std::vector<std::string> methods;
  std::vector<double> sparsities;
  int64_t seeds = 1;
  PruneSpec spec;
  FineTune ft;
  int threads = 0;
};

// The settings every row of one sweep.csv shares.
nlohmann::ordered_json settings(const SweepConfig& c) {
  const PruneSpec& s = c.spec;
  nlohmann::ordered_json out = {{"weights", fs::absolute(c.weights).lexically_normal().string()},
                                {"data", c.data.data},
                                {"data_dir", c.data.data_dir},
                                {"input_size", c.data.input_size},
                                {"limit_train", c.data.limit_train},
                                {"limit_test", c.data.limit_test},
                                {"structured", s.structured},
                                {"distribution", s.distribution},
                                {"scope_include", s.scope.include},
                                {"scope_exclude", s.scope.exclude},
                                {"exclude_first_last", s.scope.exclude_first_and_last},
                                {"max_layer_sparsity", s.max_layer_sparsity},
                                {"round_to", s.round_to},
                                {"score_batches", s.score_batches},
                                {"batch_size", s.batch_size},
                                {"synflow_rounds", s.synflow_rounds},
                                {"spode_steps", s.spode_steps},
                                {"spode_radius", s.spode_radius},
                                {"fold_bn", s.fold_bn},
                                {"group_index", s.group_index},
                                {"fusion_source_mass", s.fusion_source_mass},
                                {"fusion_target_mass", s.fusion_target_mass},
                                {"fusion_p", s.fusion_p},
                                {"fusion_normalization", s.fusion_normalization},
                                {"dimensionality_preserving", s.dimensionality_preserving},
                                {"samples", s.swap_samples},
                                {"stages", s.swap_stages},
                                {"stage_finetune_epochs", s.stage_finetune_epochs},
                                {"eps", s.swap_eps},
                                {"eps_relative", s.swap_eps_relative},
                                {"sinkhorn_iters", s.sinkhorn_iters},
                                {"sinkhorn_tol", s.sinkhorn_tol},
                                {"lambda", s.swap_lambda},
                                {"solver", s.swap_solver},
                                {"direction", s.swap_direction},
                                {"ewr_start", s.ewr_start},
                                {"update_weights", s.update_weights},
                                {"inner_iters", s.inner_iters},
                                {"resolve_iters", s.resolve_iters},
                                {"grad_noise", s.grad_noise},
                                {"grad_noise_prop", s.grad_noise_prop},
                                {"wf_block", s.wf_block},
                                {"wf_damp", s.wf_damp},
                                {"wf_update", s.wf_update},
                                {"finetune_epochs", c.ft.epochs},
                                {"lr", c.ft.lr},
                                {"momentum", c.ft.momentum},
                                {"weight_decay", c.ft.weight_decay}};
  // Absent unless used: sweeps from before these options.
  if (s.bn_recalibrate > 0) out["bn_recalibrate"] = s.bn_recalibrate;
  if (s.sinkhorn_plain) out["sinkhorn_plain"] = true;
  return out;
}

// Right-aligned in `width` terminal columns (UTF-8: continuation bytes take no column).
std::string pad_left(const std::string& text, size_t width) {
  size_t columns = 0;
  for (unsigned char ch : text) columns += (ch & 0xC0) != 0x80;
  return std::string(width > columns ? width - columns : 0, ' ') + text;
}

// Rows: sparsities; columns: methods; cells: mean ± std (mean alone for a single seed).
void print_table(const Table& cells, const std::vector<std::string>& methods) {
  std::set<double> sparsities;
  for (const auto& [method, by_sparsity] : cells)
    for (const auto& [sparsity, cell] : by_sparsity) sparsities.insert(sparsity);
  std::printf("%-10s", "sparsity");
  for (const std::string& m : methods) std::printf(" %s", pad_left(m, 16).c_str());
  std::printf("\n");
  for (double sparsity : sparsities) {
    std::printf("%-10g", sparsity);
    for (const std::string& m : methods) {
      char text[32] = "-";
      auto column = cells.find(m);
      auto it = column->second.find(sparsity);
      if (it != column->second.end() && it->second.n > 1)
        std::snprintf(text, sizeof text, "%.2f ± %.2f", it->second.mean, it->second.std);
      else if (it != column->second.end())
        std::snprintf(text, sizeof text, "%.2f", it->second.mean);
      std::printf(" %s", pad_left(text, 16).c_str());
    }
    std::printf("\n");
  }
}

void print_cell(const pipeline::SweepCell& cell) {
  if (cell.skipped) {
    std::printf("[%lld/%lld] %s sparsity %g seed %llu: in sweep.csv, skipped\n", (long long)cell.index,
                (long long)cell.total, cell.method.c_str(), cell.sparsity, (unsigned long long)cell.seed);
    return;
  }
  const EvalResult& r = cell.result;
  std::printf("[%lld/%lld] %s sparsity %g seed %llu: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%s)\n",
              (long long)cell.index, (long long)cell.total, cell.method.c_str(), cell.sparsity,
              (unsigned long long)cell.seed, r.top1, r.top5, r.loss, format_duration(cell.seconds).c_str());
  std::fflush(stdout);
}

int run(SweepConfig c) {
  if (c.threads > 0) set_num_threads(c.threads);
  c.ft.batch_size = c.spec.batch_size;
  c.spec.finetune = c.ft;
  c.spec.seed = c.data.seed;
  pipeline::SweepOptions o;
  o.methods = c.methods;
  o.structured = c.spec.structured;
  o.sparsities = c.sparsities;
  o.seeds = c.seeds;
  o.first_seed = c.data.seed;
  o.bn_batches = c.spec.bn_recalibrate;
  o.sparse.mode = nn::parse_sparse_mode(c.spec.sparse);
  o.finetune = c.ft;
  o.finetune_hooks = fine_tune_display(c.ft.epochs);
  o.workers = c.data.workers;
  o.settings = settings(c);
  pipeline::check_sweep(o);  // before the data loads

  auto [dense, d, skipped] = open_weights(c.weights, c.foreign, c.data);
  o.context = prune_context(c.spec, d);
  std::string arch = dense->metadata()["arch"];
  const fs::path dir(c.output), csv = dir / "sweep.csv", svg = dir / "sweep.svg";
  pipeline::SweepHooks hooks;
  hooks.dense_evaluated = [&](const EvalResult& base) {
    std::printf("sweep %s (%s) on %s: dense top-1 %.2f%%, %zu methods x %zu sparsities x %lld seeds\n", arch.c_str(),
                c.weights.c_str(), d.splits.name.c_str(), base.top1, c.methods.size(), c.sparsities.size(),
                (long long)c.seeds);
  };
  hooks.cell_done = print_cell;
  const pipeline::SweepResult result = pipeline::run_sweep(*dense, d, dir, o, hooks);
  const EvalResult& base = result.dense;
  const std::vector<SweepRow>& rows = result.rows;

  // The table and the plot cover every row of sweep.csv, methods in the order given first.
  Table cells = aggregate(rows);
  std::vector<std::string> methods = c.methods;
  for (const auto& [method, unused] : cells)
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
  std::printf("\ntop-1 (%%) on %s test, mean ± std over seeds; dense %.2f%%\n", d.splits.name.c_str(), base.top1);
  print_table(cells, methods);
  LinePlot plot = accuracy_plot(cells, methods, base.top1);
  plot.title = arch + " on " + d.splits.name + ": " + (c.spec.structured ? "structured" : "unstructured") + " " +
               c.spec.distribution + " pruning" + (c.ft.epochs > 0 ? ", fine-tuned" : ", no fine-tuning");
  plot.x_label = c.spec.structured ? "channels removed (%)" : "sparsity (% of prunable weights)";
  const bool png = write_plot(plot, svg);
  std::printf("\nwrote %s (%zu rows) and the plot %s%s\n", csv.c_str(), rows.size(), svg.c_str(),
              png ? " (and .png)" : " (no PNG: rsvg-convert, Debian package librsvg2-bin, missing or failed)");
  return 0;
}

}  // namespace

Command add_sweep_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("sweep", "Prune a checkpoint with several methods and sparsities; table and plot");
  auto c = std::make_shared<SweepConfig>();
  add_checkpoint_and_data_flags(*cli, c->weights, c->foreign, c->data);
  cli->add_option("--methods", c->methods,
                  "comma-separated: " + prune::method_names(prune::MethodKind::masks, ", ") +
                      " (with --structured: " + prune::importance_names(", ") + ", intrafusion:<importance>)")
      ->required()
      ->delimiter(',');
  cli->add_option("--sparsities", c->sparsities, "comma-separated fractions, e.g. 0.5,0.7,0.9")
      ->required()
      ->delimiter(',');
  cli->add_option("--seeds", c->seeds, "seeds per cell: --seed, --seed + 1, …")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  add_prune_flags(*cli, c->spec);
  add_finetune_flags(*cli, c->ft);
  cli->add_option("--batch-size,-b", c->spec.batch_size, "batch size for scoring and fine-tuning")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--seed", c->data.seed, "the first seed")->capture_default_str();
  cli->add_option("--threads", c->threads, "threads (0: SHEARS_NUM_THREADS or all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_option("--output,-o", c->output, "folder for sweep.csv, sweep.json and sweep.svg/.png")->required();
  return {cli, [c, cli] {
            check_structured_flags(*cli, c->spec);
            for (const std::string& label : c->methods)
              pipeline::check_stages(pipeline::sweep_method(label, c->spec.structured).method, c->spec.structured,
                                     c->spec.swap_stages);
            return run(*c);
          }};
}

}  // namespace shears::app
