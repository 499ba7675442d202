#include "pipeline/sweep.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "core/error.hpp"
#include "core/machine.hpp"
#include "prune/metrics.hpp"

namespace shears::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFusionPrefix = "intrafusion:";

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
                 key, ": ", value.dump(),
                 " there, unset now); rerun with the same flags to resume, or use a new "
                 "--output folder");
}

}  // namespace

void check_sweep(const SweepOptions& o) {
  for (const std::string& label : o.methods) sweep_method(label, o.structured);
  for (double s : o.sparsities)
    SHEARS_CHECK(s >= 0 && s <= 1, "--sparsities", "each must be in [0, 1] (a fraction, not a percentage), got ", s);
  SHEARS_CHECK(o.seeds > 0, "--seeds", "must be positive, got ", o.seeds);
}

namespace {

bool in_table(const std::vector<SweepRow>& rows, const std::string& method, double sparsity, uint64_t seed) {
  return std::any_of(rows.begin(), rows.end(), [&](const SweepRow& r) {
    return r.method == method && std::abs(r.sparsity - sparsity) < 1e-9 && r.seed == seed;
  });
}

// Prunes a copy of `dense` for one cell, evaluates it and appends its row to `csv`.
void run_cell(const nn::Module& dense, const data::OpenedData& d, data::DataLoader& test, const SweepOptions& o,
              const prune::SizeCounts& dense_counts, const fs::path& csv, SweepCell& cell) {
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<nn::Module> model = dense.clone();
  const SweepMethod m = sweep_method(cell.method, o.structured);
  prune::PruneContext context = o.context;
  context.target.sparsity = cell.sparsity;
  context.seed = cell.seed;
  if (o.structured) context.options.channels.importance = m.importance;
  prune::prune_model(*model, m.method, context, o.bn_batches);
  nn::sparsify(*model, o.sparse);
  if (o.finetune.epochs > 0)
    train::fine_tune(*model, o.finetune, data::training_images(d, "--finetune-epochs"), d.train_transform, cell.seed,
                     o.finetune_hooks);
  cell.result = train::evaluate(*model, test, d.num_classes);
  const prune::SizeCounts counts = prune::count_size(*model, data::image_shape(d));
  const double actual = prune::total_sparsity(prune::layer_densities(dense, *model));
  cell.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[512];
  std::snprintf(line, sizeof line, "%s,%.10g,%llu,%.4f,%.4f,%.6f,%.6f,%lld,%lld,%lld,%lld,%.3f", cell.method.c_str(),
                cell.sparsity, (unsigned long long)cell.seed, cell.result.top1, cell.result.top5, cell.result.loss,
                actual, (long long)dense_counts.size, (long long)counts.size_nz, 2 * (long long)dense_counts.macs,
                2 * (long long)counts.macs_nz, cell.seconds);
  std::ofstream out(csv, std::ios::app);
  out << line << '\n';
  SHEARS_CHECK(out.good(), csv.string(), "cannot append the row of ", cell.method, " at ", cell.sparsity);
}

}  // namespace

std::string sweep_criterion(const std::string& label, bool structured) {
  return structured && label.starts_with(kFusionPrefix) ? label.substr(kFusionPrefix.size()) : label;
}

SweepMethod sweep_method(const std::string& label, bool structured) {
  if (!structured) return {label, prune::find_method(label, prune::MethodKind::masks, "--methods").name, ""};
  const std::string importance = sweep_criterion(label, true);
  for (const prune::ChannelImportance& i : prune::channel_importances())
    if (i.name == importance) return {label, label.starts_with(kFusionPrefix) ? "intrafusion" : "remove", importance};
  throw Error("--methods: unknown channel importance '" + label + "'; expected one of " +
              prune::importance_names(", "));
}

SweepResult run_sweep(const nn::Module& dense, const data::OpenedData& d, const fs::path& folder, const SweepOptions& o,
                      const SweepHooks& hooks) {
  check_sweep(o);
  const fs::path csv = folder / "sweep.csv";
  fs::create_directories(folder);
  check_settings(folder / "sweep.json", o.settings);
  append_machine_record(folder / "machine.jsonl");
  SweepResult result;
  result.rows = read_sweep_rows(csv);
  if (result.rows.empty()) std::ofstream(csv) << kSweepHeader << '\n';

  std::shared_ptr<nn::Module> reference = dense.clone();  // evaluation switches modes: keep `dense` as given
  data::DataLoader test(d.splits.test, d.test_transform, {256, false, false, o.first_seed, o.workers, 2});
  result.dense = train::evaluate(*reference, test, d.num_classes);
  if (hooks.dense_evaluated) hooks.dense_evaluated(result.dense);
  const prune::SizeCounts dense_counts = prune::count_size(*reference, data::image_shape(d));
  const int64_t total = static_cast<int64_t>(o.methods.size() * o.sparsities.size()) * o.seeds;
  int64_t index = 0;
  for (const std::string& method : o.methods)
    for (double sparsity : o.sparsities)
      for (uint64_t seed = o.first_seed; seed < o.first_seed + static_cast<uint64_t>(o.seeds); ++seed) {
        SweepCell cell;
        cell.method = method, cell.sparsity = sparsity, cell.seed = seed, cell.index = ++index, cell.total = total;
        cell.skipped = in_table(result.rows, method, sparsity, seed);
        if (!cell.skipped) {
          run_cell(*reference, d, test, o, dense_counts, csv, cell);
          result.rows.push_back({method, sparsity, seed, cell.result.top1});
        }
        if (hooks.cell_done) hooks.cell_done(cell);
      }
  return result;
}

}  // namespace shears::pipeline
