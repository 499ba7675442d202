// `shears prune`: one pruning step on a trained checkpoint (pipeline::prune_and_measure), its
// evaluations, counts, latencies and per-layer table printed, pruned.safetensors and metrics.json
// written (pipeline/prune_run.hpp says what metrics.json holds).
#include <filesystem>
#include <optional>

#include "apps/commands.hpp"
#include "apps/prune_flags.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparsify.hpp"
#include "pipeline/prune_run.hpp"
#include "prune/methods/registry.hpp"
#include "prune/metrics.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

void print_eval(const std::string& label, const EvalResult& r) {
  std::printf("%-11s loss %.4f  top-1 %6.2f%%  top-5 %6.2f%%", label.c_str(), r.loss, r.top1, r.top5);
  if (r.nonfinite) std::printf("  (%lld with non-finite logits, counted wrong)", (long long)r.nonfinite);
  std::printf("\n");
  std::fflush(stdout);
}

std::string shape_text(const Shape& shape) {
  std::string s;
  for (int64_t v : shape) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

void print_outcome(const pipeline::PruneOutcome& o, int64_t latency_runs, bool structured) {
  std::printf("\n%-8s %14s %14s %14s   latency of a batch of %lld (median ± std of %lld runs)\n", "", "params",
              "nonzero", "MACs/image", (long long)o.latency_batch, (long long)latency_runs);
  std::printf("%-8s %14lld %14lld %14lld   %.2f ± %.2f ms\n", "dense", (long long)o.dense_counts.size,
              (long long)o.dense_counts.size_nz, (long long)o.dense_counts.macs, o.dense_latency.median_ms,
              o.dense_latency.std_ms);
  std::printf("%-8s %14lld %14lld %14lld   %.2f ± %.2f ms (nonzero MACs %lld)\n", "pruned", (long long)o.counts.size,
              (long long)o.counts.size_nz, (long long)o.counts.macs, o.latency.median_ms, o.latency.std_ms,
              (long long)o.counts.macs_nz);
  std::printf("compression %.2fx   theoretical speed-up %.2fx (FLOPs = 2 x MACs)   measured speed-up %.2fx\n",
              o.compression(), o.theoretical_speedup(), o.measured_speedup());
  if (!structured) {
    int64_t sparse_layers = 0;
    for (const pipeline::LayerTime& t : o.layer_times) sparse_layers += t.sparse;
    std::printf(
        "(%lld of %lld Conv2d/Linear layers ran on the sparse kernels, --sparse; the others on the dense ones)\n",
        (long long)sparse_layers, (long long)o.layer_times.size());
  }
  std::printf("\n%-32s %8s %10s %10s  %s\n", "layer forward", "density", "dense ms", "pruned ms", "kernels");
  for (const pipeline::LayerTime& t : o.layer_times)
    std::printf("%-32s %8.3f %10.3f %10.3f  %s\n", t.name.c_str(), t.density, t.dense_ms, t.pruned_ms,
                t.sparse ? "sparse (csr)" : "dense");
  std::printf("\n%-32s %14s %14s %10s %9s\n", "layer", "dense shape", "pruned shape", "nonzero", "sparsity");
  for (const LayerDensity& l : o.layers)
    std::printf("%-32s %14s %14s %10lld %8.2f%%\n", l.name.c_str(), shape_text(l.before).c_str(),
                shape_text(l.after).c_str(), (long long)l.nonzero, 100 * l.sparsity());
  std::printf("%-32s %14s %14s %10s %8.2f%%\n", "total", "", "", "", 100 * total_sparsity(o.layers));
}

struct PruneConfig {
  std::string weights, output;
  ForeignModel foreign;
  DataChoice data;
  PruneSpec spec;
  FineTune ft;
  int64_t latency_runs = 10;
  int threads = 0;
  bool print_config = false;
  std::string save_format = "masked";
};

int run(PruneConfig c, std::shared_ptr<nn::Module> model, std::optional<OpenedData> data) {
  if (c.threads > 0) set_num_threads(c.threads);
  SHEARS_CHECK(c.latency_runs > 0, "--latency-runs", "must be positive, got ", c.latency_runs);
  c.spec.seed = c.data.seed;
  c.ft.batch_size = c.spec.batch_size;
  c.spec.finetune = c.ft;
  c.spec.trace_folder = c.output;  // spode_trace.csv, swap_trace.csv
  check_method(c.spec);            // again: --protocol official may have set --stages
  OpenedData d = data ? std::move(*data) : pipeline::open_model_data(*model, c.weights, c.data);
  std::string what =
      c.spec.structured
          ? (c.spec.method == "intrafusion" ? "intra-fusion of channels by " : "channels by ") + c.spec.importance
          : c.spec.method;
  std::printf("prune %s (%s) on %s: %s, %s, sparsity %.4g\n", model->metadata()["arch"].c_str(), c.weights.c_str(),
              d.splits.name.c_str(), what.c_str(), c.spec.distribution.c_str(), c.spec.sparsity);
  pipeline::PruneRunOptions o;
  o.method = c.spec.method;
  o.context = prune_context(c.spec, d);
  o.bn_batches = c.spec.bn_recalibrate;
  o.finetune = c.ft;
  o.finetune_hooks = fine_tune_display(c.ft.epochs);
  o.seed = c.data.seed;
  o.workers = c.data.workers;
  o.latency_runs = c.latency_runs;
  o.sparse.mode = nn::parse_sparse_mode(c.spec.sparse);
  o.evaluated = print_eval;
  const pipeline::PruneOutcome out = pipeline::prune_and_measure(*model, d, o);
  print_outcome(out, c.latency_runs, c.spec.structured);
  const auto [bytes, dense_bytes] = pipeline::write_prune_outputs(
      c.output, *model, d.splits.name, out,
      {.weights = c.weights,
       .method = c.spec.structured ? (c.spec.method == "intrafusion" ? "intrafusion" : "structured") : c.spec.method,
       .description = what,
       .distribution = c.spec.distribution,
       .target_sparsity = c.spec.sparsity,
       .structured = c.spec.structured,
       .importance = c.spec.importance,
       .finetune_epochs = c.ft.epochs,
       .sparse_file = c.save_format == "sparse"});
  const fs::path dir(c.output);
  std::printf("\nwrote %s (%s, %.2f MB: %.3fx the %.2f MB of the same model dense) and %s\n",
              (dir / "pruned.safetensors").c_str(), c.save_format.c_str(), bytes / 1e6,
              static_cast<double>(bytes) / static_cast<double>(dense_bytes), dense_bytes / 1e6,
              (dir / "metrics.json").c_str());
  return 0;
}

}  // namespace

Command add_prune_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("prune", "Prune a checkpoint, evaluate it, optionally fine-tune it");
  auto c = std::make_shared<PruneConfig>();
  add_checkpoint_and_data_flags(*cli, c->weights, c->foreign, c->data);
  cli->add_option("--method", c->spec.method, prune::method_names(prune::MethodKind::masks))->capture_default_str();
  cli->add_option("--sparsity", c->spec.sparsity, "fraction of the prunable weights set to zero")->required();
  add_prune_flags(*cli, c->spec);
  add_finetune_flags(*cli, c->ft);
  cli->add_option("--batch-size,-b", c->spec.batch_size, "batch size for scoring and fine-tuning")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--latency-runs", c->latency_runs, "timed forwards of one test batch, before and after")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli->add_option("--seed", c->data.seed)->capture_default_str();
  cli->add_option("--threads", c->threads, "threads (0: SHEARS_NUM_THREADS or all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_option("--output,-o", c->output, "folder for pruned.safetensors and metrics.json")->required();
  cli->add_option("--save-format", c->save_format,
                  "masked (weight_orig + weight_mask, as torch.nn.utils.prune) or sparse (pruned weights as CSR "
                  "crow_indices / col_indices / values)")
      ->capture_default_str()
      ->check(CLI::IsMember({"masked", "sparse"}));
  cli->add_option("--protocol", c->spec.protocol,
                  "shears, or official: the settings of the method's official code for this model (flags given win)")
      ->capture_default_str()
      ->check(CLI::IsMember({"shears", "official"}));
  cli->add_flag("--print-config", c->print_config, "print the settings in force (presets applied) and stop");
  return {cli, [c, cli] {
            if (c->spec.structured && !cli->count("--method")) c->spec.method = "remove";
            check_structured_flags(*cli, c->spec);  // before the checkpoint and the data are read
            check_method(c->spec);
            std::optional<OpenedData> data;  // foreign weights take their shape from the data
            std::shared_ptr<nn::Module> model;
            if (c->foreign.model.empty()) {
              model = nn::load_model(c->weights);
            } else {
              auto opened = open_weights(c->weights, c->foreign, c->data);
              model = std::move(opened.model);
              data = std::move(opened.data);
            }
            if (c->spec.protocol == "official")
              apply_official_protocol(*cli, c->spec.method,
                                      c->spec.structured ? prune::MethodKind::channels : prune::MethodKind::masks,
                                      model.get());
            if (c->print_config) {
              std::printf("%s", cli->config_to_str(true, false).c_str());
              return 0;
            }
            return run(*c, model, std::move(data));
          }};
}

}  // namespace shears::app
