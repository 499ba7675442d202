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
#include "apps/plot.hpp"
#include "apps/prune.hpp"
#include "apps/sweep_table.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

struct SweepConfig {
  std::string weights, output;
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
          {"data", c.data.data}, {"data_dir", c.data.data_dir}, {"input_size", c.data.input_size},
          {"limit_train", c.data.limit_train}, {"limit_test", c.data.limit_test},
          {"structured", s.structured}, {"distribution", s.distribution},
          {"scope_include", s.scope.include}, {"scope_exclude", s.scope.exclude},
          {"exclude_first_last", s.scope.exclude_first_and_last}, {"max_layer_sparsity", s.max_layer_sparsity},
          {"round_to", s.round_to}, {"score_batches", s.score_batches}, {"batch_size", s.batch_size},
          {"synflow_rounds", s.synflow_rounds}, {"spode_steps", s.spode_steps}, {"spode_radius", s.spode_radius},
          {"fold_bn", s.fold_bn}, {"group_index", s.group_index}, {"fusion_source_mass", s.fusion_source_mass},
          {"fusion_target_mass", s.fusion_target_mass}, {"fusion_p", s.fusion_p},
          {"fusion_normalization", s.fusion_normalization}, {"dimensionality_preserving", s.dimensionality_preserving},
          {"samples", s.swap_samples}, {"stages", s.swap_stages}, {"stage_finetune_epochs", s.stage_finetune_epochs},
          {"eps", s.swap_eps}, {"eps_relative", s.swap_eps_relative}, {"sinkhorn_iters", s.sinkhorn_iters},
          {"sinkhorn_tol", s.sinkhorn_tol}, {"lambda", s.swap_lambda},
          {"solver", s.swap_solver}, {"direction", s.swap_direction}, {"ewr_start", s.ewr_start},
          {"update_weights", s.update_weights},
          {"inner_iters", s.inner_iters}, {"resolve_iters", s.resolve_iters}, {"grad_noise", s.grad_noise},
          {"grad_noise_prop", s.grad_noise_prop}, {"wf_block", s.wf_block}, {"wf_damp", s.wf_damp},
          {"wf_update", s.wf_update},
          {"finetune_epochs", c.ft.epochs}, {"lr", c.ft.lr},
          {"momentum", c.ft.momentum}, {"weight_decay", c.ft.weight_decay}};
  // Absent unless used: sweeps from before these options.
  if (s.bn_recalibrate > 0) out["bn_recalibrate"] = s.bn_recalibrate;
  if (s.sinkhorn_plain) out["sinkhorn_plain"] = true;
  return out;
}

void check_settings(const fs::path& file, const nlohmann::ordered_json& now) {
  if (!fs::exists(file)) {
    std::ofstream(file) << now.dump(2) << '\n';
    return;
  }
  std::ifstream in(file);
  nlohmann::ordered_json before = nlohmann::ordered_json::parse(in, nullptr, false);
  SHEARS_CHECK(!before.is_discarded(), file.string(), "is not valid JSON; use a new --output folder");
  for (const auto& [key, value] : now.items())
    SHEARS_CHECK(before.contains(key) && before[key] == value, "--output " + file.parent_path().string(),
                 "holds a sweep with other settings (", key, ": ", before.contains(key) ? before[key].dump() : "unset",
                 " there, ", value.dump(), " now); rerun with the same flags to resume, or use a new --output folder");
  for (const auto& [key, value] : before.items())  // a setting given then and not now
    SHEARS_CHECK(now.contains(key), "--output " + file.parent_path().string(), "holds a sweep with other settings (",
                 key, ": ", value.dump(), " there, unset now); rerun with the same flags to resume, or use a new "
                 "--output folder");
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


int run(SweepConfig c) {
  if (c.threads > 0) set_num_threads(c.threads);
  SHEARS_CHECK(c.seeds > 0, "--seeds", "must be positive, got ", c.seeds);
  const std::vector<std::string> known = criteria(c.spec.structured);
  for (const std::string& m : c.methods)
    if (std::find(known.begin(), known.end(), sweep_criterion(c.spec.structured, m)) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error("--methods: unknown " + std::string(c.spec.structured ? "channel importance '" : "method '") + m +
                  "'; expected one of " + list);
    }
  for (double s : c.sparsities)
    SHEARS_CHECK(s >= 0 && s <= 1, "--sparsities", "each must be in [0, 1] (a fraction, not a percentage), got ", s);
  c.ft.batch_size = c.spec.batch_size;
  c.spec.finetune = c.ft;

  fs::path dir(c.output), csv = dir / "sweep.csv", svg = dir / "sweep.svg";
  fs::create_directories(dir);
  check_settings(dir / "sweep.json", settings(c));
  std::vector<SweepRow> rows = read_sweep_rows(csv);
  if (rows.empty()) std::ofstream(csv) << kSweepHeader << '\n';

  OpenedData d = open_data(c.data);
  std::shared_ptr<nn::Module> dense = nn::load_model(c.weights);
  std::string arch = dense->metadata()["arch"];
  Shape input = image_shape(d);
  data::DataLoader test(d.splits.test, d.test_transform, {256, false, false, c.data.seed, c.data.workers, 2});
  EvalResult base = evaluate(*dense, test, d.num_classes);
  SizeCounts dense_counts = count_size(*dense, input);
  std::printf("sweep %s (%s) on %s: dense top-1 %.2f%%, %zu methods x %zu sparsities x %lld seeds\n", arch.c_str(),
              c.weights.c_str(), d.splits.name.c_str(), base.top1, c.methods.size(), c.sparsities.size(),
              (long long)c.seeds);

  int64_t total = static_cast<int64_t>(c.methods.size() * c.sparsities.size()) * c.seeds, done = 0;
  for (const std::string& method : c.methods)
    for (double sparsity : c.sparsities)
      for (uint64_t seed = c.data.seed; seed < c.data.seed + static_cast<uint64_t>(c.seeds); ++seed) {
        ++done;
        bool finished = std::any_of(rows.begin(), rows.end(), [&](const SweepRow& r) {
          return r.method == method && std::abs(r.sparsity - sparsity) < 1e-9 && r.seed == seed;
        });
        if (finished) {
          std::printf("[%lld/%lld] %s sparsity %g seed %llu: in sweep.csv, skipped\n", (long long)done,
                      (long long)total, method.c_str(), sparsity, (unsigned long long)seed);
          continue;
        }
        auto start = std::chrono::steady_clock::now();
        std::shared_ptr<nn::Module> model = dense->clone();
        PruneSpec spec = c.spec;
        set_sweep_method(spec, method);
        spec.sparsity = sparsity;
        spec.seed = seed;
        prune_model(*model, spec, d);
        if (c.ft.epochs > 0) fine_tune(*model, c.ft, d, seed);
        EvalResult r = evaluate(*model, test, d.num_classes);
        SizeCounts counts = count_size(*model, input);
        double actual = total_sparsity(layer_densities(*dense, *model));
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char line[512];
        std::snprintf(line, sizeof line, "%s,%.10g,%llu,%.4f,%.4f,%.6f,%.6f,%lld,%lld,%lld,%lld,%.3f", method.c_str(),
                      sparsity, (unsigned long long)seed, r.top1, r.top5, r.loss, actual, (long long)dense_counts.size,
                      (long long)counts.size_nz, 2 * (long long)dense_counts.macs, 2 * (long long)counts.macs_nz,
                      seconds);
        std::ofstream(csv, std::ios::app) << line << '\n';
        rows.push_back({method, sparsity, seed, r.top1});
        std::printf("[%lld/%lld] %s sparsity %g seed %llu: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%s)\n",
                    (long long)done, (long long)total, method.c_str(), sparsity, (unsigned long long)seed, r.top1,
                    r.top5, r.loss, format_duration(seconds).c_str());
        std::fflush(stdout);
      }

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
  cli->add_option("--weights,-w", c->weights, "a checkpoint written by shears train")->required()->check(CLI::ExistingFile);
  add_data_flags(*cli, c->data);
  cli->add_option("--methods", c->methods,
                  "comma-separated: " + prune::method_names(prune::MethodKind::masks, ", ") +
                      " (with --structured: " + prune::importance_names(", ") + ", intrafusion:<importance>)")
      ->required()
      ->delimiter(',');
  cli->add_option("--sparsities", c->sparsities, "comma-separated fractions, e.g. 0.5,0.7,0.9")->required()->delimiter(',');
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
  return {cli, [c] { return run(*c); }};
}

}  // namespace shears::app
