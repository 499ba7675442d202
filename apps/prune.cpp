// `shears prune`: one pruning step on a trained checkpoint (pipeline::prune_and_measure), its
// evaluations, counts, latencies and per-layer table printed, pruned.safetensors and metrics.json
// written (pipeline/prune_run.hpp says what metrics.json holds).
#include "apps/prune.hpp"

#include <filesystem>

#include "apps/commands.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"
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
  if (!structured)
    std::printf("(masks zero weights but the dense kernels still run: --structured removes channels for real speed)\n");
  std::printf("\n%-32s %14s %14s %10s %9s\n", "layer", "dense shape", "pruned shape", "nonzero", "sparsity");
  for (const LayerDensity& l : o.layers)
    std::printf("%-32s %14s %14s %10lld %8.2f%%\n", l.name.c_str(), shape_text(l.before).c_str(),
                shape_text(l.after).c_str(), (long long)l.nonzero, 100 * l.sparsity());
  std::printf("%-32s %14s %14s %10s %8.2f%%\n", "total", "", "", "", 100 * total_sparsity(o.layers));
}

struct PruneConfig {
  std::string weights, output;
  DataChoice data;
  PruneSpec spec;
  FineTune ft;
  int64_t latency_runs = 10;
  int threads = 0;
};

int run(PruneConfig c, const CLI::App& cli) {
  if (c.threads > 0) set_num_threads(c.threads);
  if (c.spec.structured && !cli.count("--method")) c.spec.method = "remove";
  SHEARS_CHECK(!c.spec.structured || c.spec.method == "remove" || c.spec.method == "intrafusion", "--method",
               "with --structured is remove or intrafusion (the channel criterion is --importance), got '",
               c.spec.method, "'");
  SHEARS_CHECK(c.latency_runs > 0, "--latency-runs", "must be positive, got ", c.latency_runs);
  c.spec.seed = c.data.seed;
  c.ft.batch_size = c.spec.batch_size;
  c.spec.finetune = c.ft;
  c.spec.trace_folder = c.output;  // spode_trace.csv, swap_trace.csv
  OpenedData d = open_data(c.data);
  std::shared_ptr<nn::Module> model = nn::load_model(c.weights);
  std::string what = c.spec.structured ? (c.spec.method == "intrafusion" ? "intra-fusion of channels by " : "channels by ") +
                                           c.spec.importance
                                     : c.spec.method;
  std::printf("prune %s (%s) on %s: %s, %s, sparsity %.4g\n", model->metadata()["arch"].c_str(), c.weights.c_str(),
              d.splits.name.c_str(), what.c_str(), c.spec.distribution.c_str(), c.spec.sparsity);
  check_method(c.spec);
  pipeline::PruneRunOptions o;
  o.method = c.spec.method;
  o.context = prune_context(c.spec, d);
  o.bn_batches = c.spec.bn_recalibrate;
  o.finetune = c.ft;
  o.finetune_hooks = fine_tune_display(c.ft.epochs);
  o.seed = c.data.seed;
  o.workers = c.data.workers;
  o.latency_runs = c.latency_runs;
  o.evaluated = print_eval;
  const pipeline::PruneOutcome out = pipeline::prune_and_measure(*model, d, o);
  print_outcome(out, c.latency_runs, c.spec.structured);
  pipeline::write_prune_outputs(
      c.output, *model, d.splits.name, out,
      {.weights = c.weights,
       .method = c.spec.structured ? (c.spec.method == "intrafusion" ? "intrafusion" : "structured") : c.spec.method,
       .description = what,
       .distribution = c.spec.distribution,
       .target_sparsity = c.spec.sparsity,
       .structured = c.spec.structured,
       .importance = c.spec.importance,
       .finetune_epochs = c.ft.epochs});
  const fs::path dir(c.output);
  std::printf("\nwrote %s and %s\n", (dir / "pruned.safetensors").c_str(), (dir / "metrics.json").c_str());
  return 0;
}

}  // namespace

void add_prune_flags(CLI::App& cli, PruneSpec& s) {
  cli.add_option("--distribution", s.distribution, "global (one ranking) or per-layer (same sparsity per tensor)")
      ->capture_default_str();
  cli.add_option("--scope-include", s.scope.include, "also prune parameters matching these regexes");
  cli.add_option("--scope-exclude", s.scope.exclude,
                 "leave parameters matching these regexes dense (with --structured: module paths)");
  cli.add_flag("--exclude-first-last", s.scope.exclude_first_and_last, "keep the stem and the classifier dense");
  cli.add_option("--max-layer-sparsity", s.max_layer_sparsity, "no tensor (or channel group) loses more than this")
      ->capture_default_str();
  cli.add_flag("--structured", s.structured, "remove whole channels (--sparsity is then a channel ratio)");
  cli.add_option("--importance", s.importance, "with --structured: " + prune::importance_names())
      ->capture_default_str();
  cli.add_flag("--fold-bn", s.fold_bn,
               "with --structured: fold BatchNorms into their producers first (Intra-Fusion's default pruning)");
  cli.add_option("--group-index", s.group_index,
                 "with --structured: prune only this group, counted from the output (0 = nearest the logits)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
  cli.add_option("--fusion-source-mass", s.fusion_source_mass, "intrafusion: uniform, importance or radical")
      ->capture_default_str();
  cli.add_option("--fusion-target-mass", s.fusion_target_mass, "intrafusion: uniform, importance or radical")
      ->capture_default_str();
  cli.add_option("--fusion-p", s.fusion_p, "intrafusion: the cost's l_p norm (>= 1)")->capture_default_str();
  cli.add_option("--fusion-normalization", s.fusion_normalization, "intrafusion: code or function_preserving")
      ->capture_default_str();
  cli.add_flag("--dimensionality-preserving", s.dimensionality_preserving,
               "intrafusion/--fold-bn: zero the removed channels instead of cutting them (widths kept)");
  cli.add_option("--round-to", s.round_to, "with --structured: keep a multiple of this many channels")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cli.add_option("--score-batches", s.score_batches, "training batches scored by snip, grasp and taylor")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--bn-recalibrate", s.bn_recalibrate,
                 "after pruning, re-estimate BatchNorm statistics on N training batches (0: keep the dense ones)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--synflow-rounds", s.synflow_rounds)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--spode-steps", s.spode_steps, "spode: steps N of the mask ODE")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--spode-radius", s.spode_radius, "spode: step radius over the smallest feasible (> 1)")
      ->capture_default_str();
  cli.add_option("--samples", s.swap_samples, "swap/lr/woodfisher: training samples n of G per stage")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli.add_option("--stages", s.swap_stages, "swap/lr/woodfisher/magnitude: stages of the cubic schedule (1: one-shot)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cli.add_option("--stage-finetune-epochs", s.stage_finetune_epochs,
                 "with --stages > 1: fine-tuning epochs after every stage but the last (with --lr, --momentum, --wd)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--eps", s.swap_eps, "swap: entropic regularisation (<= 1e-10: exact OT; inf: product plan)")
      ->capture_default_str();
  cli.add_flag("--eps-relative", s.swap_eps_relative, "swap: --eps is a multiple of mean(M) at each plan");
  cli.add_option("--sinkhorn-iters", s.sinkhorn_iters, "swap: Sinkhorn iteration cap")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  cli.add_option("--sinkhorn-tol", s.sinkhorn_tol, "swap: Sinkhorn stop on the row-marginal error (L1)")
      ->capture_default_str();
  cli.add_flag("--sinkhorn-plain", s.sinkhorn_plain,
               "swap: plain Sinkhorn iterations as the reference (default: over-relaxed, same plan, fewer iterations)");
  cli.add_option("--lambda", s.swap_lambda, "swap/lr: ridge weight")->capture_default_str();
  cli.add_option("--solver", s.swap_solver, "swap/lr: principled (IHT on the objective) or code (the official step)")
      ->capture_default_str();
  cli.add_option("--direction", s.swap_direction, "swap --solver code: code or exact")->capture_default_str();
  cli.add_option("--ewr-start", s.ewr_start, "swap principled: start from the lr solution or from magnitude")
      ->capture_default_str();
  cli.add_flag("--update-weights", s.update_weights, "swap/lr --solver code: write the step's values");
  cli.add_option("--inner-iters", s.inner_iters, "swap/lr: IHT steps per stage (-1: 1 for code, 20 for principled)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{-1}, int64_t{1000000000}));
  cli.add_option("--resolve-iters", s.resolve_iters,
                 "swap/lr principled: conjugate-gradient steps of the re-solve on the support (0: plain IHT)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  cli.add_option("--grad-noise", s.grad_noise, "swap/lr/woodfisher: noise scale c of the per-sample gradients (0: off)")
      ->capture_default_str();
  cli.add_option("--grad-noise-prop", s.grad_noise_prop, "fraction of each gradient's entries that get noise")
      ->capture_default_str();
  cli.add_option("--wf-block", s.wf_block, "woodfisher: block size B of the Fisher")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli.add_option("--wf-damp", s.wf_damp, "woodfisher: damping delta")->capture_default_str();
  cli.add_option("--wf-update", s.wf_update, "woodfisher: apply the OBS correction to the surviving weights")
      ->capture_default_str();
}

void add_finetune_flags(CLI::App& cli, FineTune& ft) {
  cli.add_option("--finetune-epochs", ft.epochs, "fine-tune with the masks fixed (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--lr", ft.lr, "fine-tuning learning rate (cosine-decayed)")->capture_default_str();
  cli.add_option("--momentum", ft.momentum)->capture_default_str();
  cli.add_option("--weight-decay,--wd", ft.weight_decay)->capture_default_str();
}

prune::PruneContext prune_context(const PruneSpec& spec, const OpenedData& d) {
  return pipeline::prune_context(spec, d, fine_tune_display(spec.stage_finetune_epochs),
                                 [](const std::string& line) { std::printf("%s\n", line.c_str()); });
}

train::FineTuneHooks fine_tune_display(int64_t epochs) {
  auto progress = std::make_shared<std::unique_ptr<Progress>>();
  train::FineTuneHooks hooks;
  hooks.loop.epoch_start = [progress, epochs](int64_t epoch, int64_t steps) {
    *progress =
        std::make_unique<Progress>("fine-tune " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), steps);
  };
  hooks.loop.step = [progress](const train::EpochStats& s) {
    char stats[64];
    std::snprintf(stats, sizeof stats, "loss %.4f acc %.2f%%", s.mean_loss(), s.top1());
    (*progress)->update(s.steps, stats);
  };
  hooks.loop.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  hooks.epoch_end = [progress, epochs](const train::EpochStats& s) {
    (*progress)->finish();
    std::printf("fine-tune epoch %lld/%lld  train loss %.4f  top-1 %.2f%%\n", (long long)s.epoch + 1, (long long)epochs,
                s.mean_loss(), s.top1());
  };
  return hooks;
}

Command add_prune_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("prune", "Prune a checkpoint, evaluate it, optionally fine-tune it");
  auto c = std::make_shared<PruneConfig>();
  cli->add_option("--weights,-w", c->weights, "a checkpoint written by shears train")->required()->check(CLI::ExistingFile);
  add_data_flags(*cli, c->data);
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
  return {cli, [c, cli] { return run(*c, *cli); }};
}

}  // namespace shears::app
