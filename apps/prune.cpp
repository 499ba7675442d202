// `shears prune`: one pruning step on a trained checkpoint (issue 7). Evaluates the model before
// pruning, right after, and after an optional fine-tuning with the masks fixed; prints parameters,
// MACs, theoretical and measured speed-up and a per-layer sparsity table; writes the pruned
// checkpoint and metrics.json.
//
// metrics.json uses ShrinkBench's vocabulary (docs/design.md#pruning-metrics): `size` and `flops`
// are the dense model's (before pruning), `size_nz` and `flops_nz` the pruned model's nonzero
// parameters and FLOPs, so that `compression_ratio` = size / size_nz and
// `theoretical_speedup` = flops / flops_nz compare the two for masks and channel removal alike.
// FLOPs = 2 × MACs, per image, Conv2d and Linear only (nn/summary.hpp); `macs`/`macs_nz` are given
// too. `loss`, `acc1`, `acc5` are the final model's (fine-tuned if --finetune-epochs > 0), on the
// test split, accuracies in percent; `dense`, `pruned` and `finetuned` hold the three evaluations.
// `sparsity` is the fraction of zeros among all Conv2d/Linear weights of the dense model (removed
// channels count as zeros), `layers` the same per tensor. `latency_ms` times a forward of one test
// batch (median, std; the two models alternate).
#include "apps/prune.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>

#include "apps/commands.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"
#include "nn/summary.hpp"
#include "optim/optimizer.hpp"
#include "prune/baselines.hpp"
#include "prune/bn_fold.hpp"
#include "prune/bn_recalibrate.hpp"
#include "prune/intra_fusion.hpp"
#include "prune/masks.hpp"
#include "prune/spode.hpp"
#include "prune/structured.hpp"
#include "prune/swap.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

prune::Distribution parse_distribution(const std::string& name) {
  if (name == "global") return prune::Distribution::global;
  if (name == "per-layer") return prune::Distribution::per_layer;
  throw Error("--distribution: unknown value '" + name + "'; expected global or per-layer");
}

std::vector<data::Batch> scoring_batches(const PruneSpec& spec, const OpenedData& d) {
  data::DataLoader loader(d.splits.train, d.train_transform, {spec.batch_size, true, false, spec.seed, 1, 2});
  loader.start_epoch(0);
  std::vector<data::Batch> batches;
  while (static_cast<int64_t>(batches.size()) < spec.score_batches)
    if (auto batch = loader.next())
      batches.push_back(std::move(*batch));
    else
      break;
  SHEARS_CHECK(!batches.empty(), "--score-batches", "the training split is empty: no data to score with");
  return batches;
}

// swap, lr, woodfisher, and magnitude in several stages: the gradual driver of prune/swap.hpp
// (one-shot when --stages is 1), fine-tuning between stages, a line and a trace row per stage.
void prune_in_stages(nn::Module& model, const std::vector<std::string>& names, const prune::SparsityTarget& target,
                     const PruneSpec& spec, const OpenedData& d) {
  SHEARS_CHECK(spec.swap_samples >= 1 && spec.swap_stages >= 1, "--samples", "and --stages must be positive, got ",
               spec.swap_samples, " and ", spec.swap_stages);
  SHEARS_CHECK(spec.stage_finetune_epochs >= 0, "--stage-finetune-epochs", "must be >= 0, got ",
               spec.stage_finetune_epochs);
  SHEARS_CHECK(spec.swap_solver == "principled" || spec.swap_solver == "code", "--solver",
               "expected principled or code, got '", spec.swap_solver, "'");
  SHEARS_CHECK(spec.swap_direction == "code" || spec.swap_direction == "exact", "--direction",
               "expected code or exact, got '", spec.swap_direction, "'");
  prune::SwapPruneOptions o;
  o.method = spec.method == "swap" ? prune::StageMethod::swap
             : spec.method == "lr" ? prune::StageMethod::lr
             : spec.method == "woodfisher" ? prune::StageMethod::woodfisher
                                           : prune::StageMethod::magnitude;
  o.swap.epsilon = spec.swap_eps;
  o.swap.relative_epsilon = spec.swap_eps_relative;
  o.swap.sinkhorn_iterations = spec.sinkhorn_iters;
  o.swap.sinkhorn_tolerance = spec.sinkhorn_tol;
  o.swap.sinkhorn_overrelaxation = !spec.sinkhorn_plain;
  o.swap.solver = spec.swap_solver == "code" ? prune::Solver::code : prune::Solver::principled;
  o.swap.direction = spec.swap_direction == "exact" ? prune::Direction::exact : prune::Direction::code;
  o.swap.update_weights = spec.update_weights;
  o.swap.inner_iters = spec.inner_iters >= 0 ? spec.inner_iters : o.swap.solver == prune::Solver::code ? 1 : 20;
  o.swap.resolve_iters = spec.resolve_iters;
  SHEARS_CHECK(spec.ewr_start == "lr" || spec.ewr_start == "magnitude", "--ewr-start",
               "expected lr or magnitude, got '", spec.ewr_start, "'");
  o.swap.lr_start = spec.ewr_start == "lr";
  o.woodfisher.block = spec.wf_block;
  o.woodfisher.damp = spec.wf_damp;
  o.woodfisher.update_weights = spec.wf_update;
  o.lambda = spec.swap_lambda;
  o.stages = spec.swap_stages;
  o.noise_scale = spec.grad_noise;
  o.noise_prop = spec.grad_noise_prop;
  o.seed = spec.seed;
  // One batch of n fresh training samples per stage (workers 0: no batch is prepared ahead).
  data::DataLoader samples(d.splits.train, d.train_transform, {spec.swap_samples, true, true, spec.seed, 0, 1});
  FineTune ft = spec.finetune;
  ft.epochs = spec.stage_finetune_epochs;
  auto between = [&](int64_t stage) {
    if (ft.epochs > 0) fine_tune(model, ft, d, spec.seed + static_cast<uint64_t>(stage));
  };
  std::vector<prune::SwapStageLog> logs = prune::swap_prune(model, names, target, data::endless_batches(samples, "swap_prune"), o, between);
  auto ratio = [](const prune::SwapStageLog& l) { return l.mean_cost > 0 ? l.epsilon / l.mean_cost : 0.0; };
  for (const prune::SwapStageLog& l : logs)
    std::printf("stage %lld/%lld %s: sparsity %.4f, plan %s (eps/mean(M) %.3g, %lld Sinkhorn its), Q %.4g -> %.4g, "
                "%lld inner its, overlap with magnitude %.3f, G %.2f s, solve %.2f s\n",
                (long long)l.stage, (long long)o.stages, l.method.c_str(), l.sparsity,
                l.plan.empty() ? "-" : l.plan.c_str(), ratio(l), (long long)l.sinkhorn_iterations, l.objective_before,
                l.objective_after, (long long)l.inner_iterations, l.magnitude_overlap, l.gradient_seconds,
                l.solve_seconds);
  if (spec.swap_trace.empty()) return;
  std::ofstream trace(spec.swap_trace);  // ε's scale and the plan's state decide what EWR does: keep them
  trace << "stage,method,sparsity,kept,plan,epsilon,mean_cost,eps_over_mean_cost,plan_entropy,sinkhorn_iterations,"
           "marginal_error,converged,objective_before,objective_after,tau_c,tau,fallback,inner_iterations,"
           "magnitude_overlap,regrown,gradient_seconds,solve_seconds\n";
  trace.precision(10);
  for (const prune::SwapStageLog& l : logs)
    trace << l.stage << ',' << l.method << ',' << l.sparsity << ',' << l.kept << ',' << l.plan << ',' << l.epsilon
          << ',' << l.mean_cost << ',' << ratio(l) << ',' << l.plan_entropy << ',' << l.sinkhorn_iterations << ','
          << l.marginal_error << ',' << l.converged << ',' << l.objective_before << ',' << l.objective_after << ','
          << l.tau_c << ',' << l.tau << ',' << l.fallback << ',' << l.inner_iterations << ',' << l.magnitude_overlap
          << ',' << l.regrown << ',' << l.gradient_seconds << ',' << l.solve_seconds << '\n';
  SHEARS_CHECK(trace.good(), spec.swap_trace, "cannot write the stage trace");
}

void prune_unstructured(nn::Module& model, const PruneSpec& spec, const OpenedData& d) {
  std::vector<std::string> names = prune::prunable_parameters(model, spec.scope);
  prune::SparsityTarget target{spec.sparsity, parse_distribution(spec.distribution), spec.max_layer_sparsity};
  prune::check_target(target);
  prune::NamedTensors scores;
  if (spec.method == "synflow") {
    prune::apply_masks(model, prune::synflow_masks(model, names, image_shape(d), target, {spec.synflow_rounds}));
    return;
  }
  if (spec.method == "spode") {
    data::DataLoader loader(d.splits.train, d.train_transform, {spec.batch_size, true, true, spec.seed, 1, 2});
    prune::SpodeOptions options;
    options.steps = spec.spode_steps;
    options.r = spec.spode_radius;
    prune::SpodeResult result = prune::spode_prune(model, names, target, data::endless_batches(loader, "spode_prune"), options);
    if (!spec.spode_trace.empty()) {  // implicit regrowth is one of the paper's claims: keep the evidence
      std::ofstream trace(spec.spode_trace);
      trace << "step,dt,loss,soft_sparsity,polarised_sparsity,increased,regrown\n";
      for (const prune::SpodeStep& t : result.trace)
        trace << t.step << ',' << t.dt << ',' << t.loss << ',' << t.soft_sparsity << ',' << t.polarised_sparsity << ','
              << t.increased << ',' << t.regrown << '\n';
      SHEARS_CHECK(trace.good(), spec.spode_trace, "cannot write the SpODE trace");
    }
    return;
  }
  if (spec.method == "swap" || spec.method == "lr" || spec.method == "woodfisher" ||
      (spec.method == "magnitude" && spec.swap_stages > 1)) {
    prune_in_stages(model, names, target, spec, d);
    return;
  }
  if (spec.method == "magnitude") {
    scores = prune::magnitude_scores(model, names);
  } else if (spec.method == "random") {
    Generator gen(spec.seed);
    scores = prune::random_scores(model, names, gen);
  } else if (spec.method == "snip") {
    scores = prune::snip_scores(model, names, scoring_batches(spec, d));
  } else if (spec.method == "grasp") {
    scores = prune::grasp_scores(model, names, scoring_batches(spec, d));
  } else {
    throw Error("--method: unknown method '" + spec.method +
                "'; expected magnitude, random, snip, grasp, synflow, spode, swap, lr or woodfisher");
  }
  prune::mark_pruned(model, scores);
  prune::apply_masks(model, prune::masks_from_scores(scores, target));
}

// A dotted module path as a regex matching exactly itself.
std::string literal(const std::string& path) {
  std::string out;
  for (char ch : path) {
    if (ch == '.') out += '\\';
    out += ch;
  }
  return out;
}

prune::FusionMass parse_mass(const std::string& flag, const std::string& name) {
  if (name == "uniform") return prune::FusionMass::uniform;
  if (name == "importance") return prune::FusionMass::importance;
  if (name == "radical") return prune::FusionMass::radical;
  throw Error(flag + ": unknown mass '" + name + "'; expected uniform, importance or radical");
}

prune::FusionNormalization parse_normalization(const std::string& name) {
  if (name == "code") return prune::FusionNormalization::code;
  if (name == "function_preserving") return prune::FusionNormalization::function_preserving;
  throw Error("--fusion-normalization: unknown value '" + name + "'; expected code or function_preserving");
}

// Taylor scores read the gradients held by the parameters: sum them over the scoring batches in
// eval mode (running BN statistics; docs/algorithms/intra-fusion.md#the-official-code-and-shears).
void accumulate_gradients(nn::Module& model, const PruneSpec& spec, const OpenedData& d) {
  bool was_training = model.is_training();
  model.eval();
  model.zero_grad();
  for (const data::Batch& batch : scoring_batches(spec, d)) cross_entropy(model(batch.images), batch.labels).backward();
  model.train(was_training);
}

void prune_structured(nn::Module& model, const PruneSpec& spec, const OpenedData& d) {
  SHEARS_CHECK(spec.scope.include.empty(), "--scope-include",
               "selects weights for unstructured pruning; with --structured every channel group is prunable unless "
               "--scope-exclude names its layers");
  SHEARS_CHECK(spec.method == "remove" || spec.method == "intrafusion", "--method",
               "with --structured is remove or intrafusion (the channel criterion is --importance), got '", spec.method,
               "'");
  // With --structured the exclusions name modules: the groups of those layers keep their channels.
  std::vector<std::string> ignored = spec.scope.exclude;
  if (spec.scope.exclude_first_and_last) {
    std::vector<std::string> all = prune::prunable_parameters(model);
    SHEARS_CHECK(!all.empty(), "--exclude-first-last", "the model has no Conv2d or Linear layer");
    for (const std::string* name : {&all.front(), &all.back()})
      ignored.push_back(literal(name->substr(0, name->rfind('.'))));
  }
  prune::ChannelTarget target{spec.sparsity, parse_distribution(spec.distribution), spec.max_layer_sparsity,
                              spec.round_to};
  // Intra-Fusion, its "default pruning" baseline (--fold-bn) and the one-group protocol all work on
  // the BN-folded model; importances are then computed after folding
  // (docs/algorithms/intra-fusion.md#protocols).
  bool fused = spec.method == "intrafusion";
  bool fold = fused || spec.fold_bn || spec.group_index >= 0;
  SHEARS_CHECK(!(spec.group_index >= 0 && !ignored.empty()), "--group-index",
               "prunes one group; it cannot be combined with --scope-exclude or --exclude-first-last");
  std::vector<prune::FoldedPair> folded;
  if (fold) folded = prune::fold_batch_norms(model, image_shape(d));
  Generator gen(spec.seed);
  prune::Importance importance;
  if (spec.importance == "l1" || spec.importance == "l2") {
    importance = prune::magnitude_importance(spec.importance == "l1" ? 1 : 2);
  } else if (spec.importance == "lamp") {
    importance = prune::lamp_importance();
  } else if (spec.importance == "bn") {
    SHEARS_CHECK(!fold, "--importance bn", "reads BatchNorm scales, which folding turns into ones: use it with "
                 "--method remove and without --fold-bn or --group-index");
    importance = prune::bn_scale_importance();
  } else if (spec.importance == "random") {
    importance = prune::random_importance(gen);
  } else if (spec.importance == "taylor") {
    accumulate_gradients(model, spec, d);
    importance = prune::taylor_importance();
  } else {
    throw Error("--importance: unknown importance '" + spec.importance + "'; expected l1, l2, lamp, bn, taylor or random");
  }
  if (!fold) {
    prune::prune_channels(model, image_shape(d), importance, target, ignored);
    return;
  }
  prune::IntraFusionOptions options;
  options.importance = importance;
  options.source_mass = parse_mass("--fusion-source-mass", spec.fusion_source_mass);
  options.target_mass = parse_mass("--fusion-target-mass", spec.fusion_target_mass);
  options.p = spec.fusion_p;
  options.normalization = parse_normalization(spec.fusion_normalization);
  options.merge = fused ? prune::ChannelMerge::fuse : prune::ChannelMerge::select;
  options.preserve_dimensions = spec.dimensionality_preserving;
  if (spec.group_index >= 0)
    prune::intra_fusion_prune(model, image_shape(d), spec.group_index, spec.sparsity, options);
  else
    prune::intra_fusion_prune_network(model, image_shape(d), target, options, ignored);
  prune::restore_bias_free_producers(model, folded);  // the result reloads as its architecture
}

int64_t nonzeros(const nn::Module& model, const std::string& name) {
  Tensor value = model.parameter(name);
  Tensor mask = model.has_mask(name) ? model.mask(name) : Tensor();
  int64_t count = 0;
  for (int64_t i = 0; i < value.numel(); ++i) count += value.data()[i] != 0.f && (!mask.defined() || mask.data()[i] != 0.f);
  return count;
}

struct Latency {
  double median_ms = 0, std_ms = 0;  // the median resists the outliers of a shared machine
};

Latency stats(std::vector<double> ms) {
  Latency l;
  double n = static_cast<double>(ms.size()), mean = 0;
  for (double v : ms) mean += v / n;
  for (double v : ms) l.std_ms += (v - mean) * (v - mean);
  l.std_ms = ms.size() > 1 ? std::sqrt(l.std_ms / (n - 1)) : 0.0;
  std::sort(ms.begin(), ms.end());
  size_t mid = ms.size() / 2;
  l.median_ms = ms.size() % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
  return l;
}

// Forwards of one batch without gradients, the two models alternating (after warm-up runs), so
// that clock and cache drift hit both alike.
std::pair<Latency, Latency> time_inference(nn::Module& dense, nn::Module& pruned, const Tensor& images, int64_t runs) {
  NoGradGuard no_grad;
  dense.eval();
  pruned.eval();
  auto time_one = [&](nn::Module& model) {
    auto start = std::chrono::steady_clock::now();
    model(images);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  for (int warm_up = 0; warm_up < 2; ++warm_up) {
    time_one(dense);
    time_one(pruned);
  }
  std::vector<double> a, b;
  for (int64_t r = 0; r < runs; ++r) {
    a.push_back(time_one(dense));
    b.push_back(time_one(pruned));
  }
  return {stats(a), stats(b)};
}

nlohmann::ordered_json to_json(const EvalResult& r) { return {{"loss", r.loss}, {"acc1", r.top1}, {"acc5", r.top5}}; }

void print_eval(const char* label, const EvalResult& r) {
  std::printf("%-11s loss %.4f  top-1 %6.2f%%  top-5 %6.2f%%", label, r.loss, r.top1, r.top5);
  if (r.nonfinite) std::printf("  (%lld with non-finite logits, counted wrong)", (long long)r.nonfinite);
  std::printf("\n");
  std::fflush(stdout);
}

std::string shape_text(const Shape& shape) {
  std::string s;
  for (int64_t v : shape) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
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
  if (c.spec.method == "spode") {
    fs::create_directories(c.output);
    c.spec.spode_trace = (fs::path(c.output) / "spode_trace.csv").string();
  }
  if (!c.spec.structured && (c.spec.method == "swap" || c.spec.method == "lr" || c.spec.method == "woodfisher" ||
                             (c.spec.method == "magnitude" && c.spec.swap_stages > 1))) {
    fs::create_directories(c.output);
    c.spec.swap_trace = (fs::path(c.output) / "swap_trace.csv").string();
  }
  OpenedData d = open_data(c.data);
  std::shared_ptr<nn::Module> model = nn::load_model(c.weights);
  std::shared_ptr<nn::Module> dense = model->clone();
  Shape input = image_shape(d);
  std::string what = c.spec.structured ? (c.spec.method == "intrafusion" ? "intra-fusion of channels by " : "channels by ") +
                                           c.spec.importance
                                     : c.spec.method;
  std::printf("prune %s (%s) on %s: %s, %s, sparsity %.4g\n", model->metadata()["arch"].c_str(), c.weights.c_str(),
              d.splits.name.c_str(), what.c_str(), c.spec.distribution.c_str(), c.spec.sparsity);

  data::DataLoader test(d.splits.test, d.test_transform, {256, false, false, c.data.seed, c.data.workers, 2});
  test.start_epoch(0);
  std::optional<data::Batch> first = test.next();
  SHEARS_CHECK(first.has_value(), "--data " + c.data.data, "the test split is empty");
  Tensor probe = first->images;  // the batch timed for the measured speed-up
  EvalResult before = evaluate(*model, test, d.num_classes);
  print_eval("dense", before);
  SizeCounts dense_counts = count_size(*model, input);

  auto start = std::chrono::steady_clock::now();
  prune_model(*model, c.spec, d);
  double prune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EvalResult pruned = evaluate(*model, test, d.num_classes);
  print_eval("pruned", pruned);
  EvalResult final_eval = pruned;
  if (c.ft.epochs > 0) {
    fine_tune(*model, c.ft, d, c.data.seed);
    final_eval = evaluate(*model, test, d.num_classes);
    print_eval("fine-tuned", final_eval);
  }
  SizeCounts counts = count_size(*model, input);
  auto [dense_latency, latency] = time_inference(*dense, *model, probe, c.latency_runs);
  std::vector<LayerDensity> layers = layer_densities(*dense, *model);

  double compression = static_cast<double>(dense_counts.size) / counts.size_nz;
  double theoretical = static_cast<double>(dense_counts.macs) / counts.macs_nz;
  double measured = dense_latency.median_ms / latency.median_ms;
  std::printf("\n%-8s %14s %14s %14s   latency of a batch of %lld (median ± std of %lld runs)\n", "", "params",
              "nonzero", "MACs/image", (long long)probe.size(0), (long long)c.latency_runs);
  std::printf("%-8s %14lld %14lld %14lld   %.2f ± %.2f ms\n", "dense", (long long)dense_counts.size,
              (long long)dense_counts.size_nz, (long long)dense_counts.macs, dense_latency.median_ms, dense_latency.std_ms);
  std::printf("%-8s %14lld %14lld %14lld   %.2f ± %.2f ms (nonzero MACs %lld)\n", "pruned", (long long)counts.size,
              (long long)counts.size_nz, (long long)counts.macs, latency.median_ms, latency.std_ms, (long long)counts.macs_nz);
  std::printf("compression %.2fx   theoretical speed-up %.2fx (FLOPs = 2 x MACs)   measured speed-up %.2fx\n",
              compression, theoretical, measured);
  if (!c.spec.structured)
    std::printf("(masks zero weights but the dense kernels still run: --structured removes channels for real speed)\n");

  std::printf("\n%-32s %14s %14s %10s %9s\n", "layer", "dense shape", "pruned shape", "nonzero", "sparsity");
  for (const LayerDensity& l : layers)
    std::printf("%-32s %14s %14s %10lld %8.2f%%\n", l.name.c_str(), shape_text(l.before).c_str(),
                shape_text(l.after).c_str(), (long long)l.nonzero, 100 * l.sparsity());
  std::printf("%-32s %14s %14s %10s %8.2f%%\n", "total", "", "", "", 100 * total_sparsity(layers));

  fs::path dir(c.output);
  fs::create_directories(dir);
  fs::path checkpoint = dir / "pruned.safetensors";
  model->save_checkpoint(checkpoint.string(), {{"pruning", what}, {"target_sparsity", std::to_string(c.spec.sparsity)},
                                              {"test_top1", std::to_string(final_eval.top1)}});
  nlohmann::ordered_json layer_rows = nlohmann::ordered_json::array();
  for (const LayerDensity& l : layers)
    layer_rows.push_back({{"name", l.name}, {"shape_dense", l.before}, {"shape_pruned", l.after},
                          {"nonzero", l.nonzero}, {"sparsity", l.sparsity()}});
  nlohmann::ordered_json metrics = {
      {"model", model->metadata()["arch"]}, {"weights", c.weights}, {"dataset", d.splits.name},
      {"method", c.spec.structured ? (c.spec.method == "intrafusion" ? "intrafusion" : "structured") : c.spec.method}, {"structured", c.spec.structured},
      {"distribution", c.spec.distribution}, {"target_sparsity", c.spec.sparsity},
      {"sparsity", total_sparsity(layers)},
      {"size", dense_counts.size}, {"size_nz", counts.size_nz}, {"size_pruned_model", counts.size},
      {"compression_ratio", compression},
      {"flops", 2 * dense_counts.macs}, {"flops_nz", 2 * counts.macs_nz},
      {"macs", dense_counts.macs}, {"macs_nz", counts.macs_nz}, {"theoretical_speedup", theoretical},
      {"loss", final_eval.loss}, {"acc1", final_eval.top1}, {"acc5", final_eval.top5},
      {"dense", to_json(before)}, {"pruned", to_json(pruned)},
      {"finetune_epochs", c.ft.epochs},
      {"latency_ms", {{"batch", probe.size(0)},
                      {"dense", {{"median", dense_latency.median_ms}, {"std", dense_latency.std_ms}}},
                      {"pruned", {{"median", latency.median_ms}, {"std", latency.std_ms}}}}},
      {"measured_speedup", measured}, {"prune_seconds", prune_seconds}, {"layers", layer_rows}};
  if (c.spec.structured) metrics["importance"] = c.spec.importance;
  if (c.ft.epochs > 0) metrics["finetuned"] = to_json(final_eval);
  std::ofstream(dir / "metrics.json") << metrics.dump(2) << '\n';
  std::printf("\nwrote %s and %s\n", checkpoint.c_str(), (dir / "metrics.json").c_str());
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
  cli.add_option("--importance", s.importance, "with --structured: l1, l2, lamp, bn, taylor or random")
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

const std::vector<std::string>& criteria(bool structured) {
  static const std::vector<std::string> masks{"magnitude", "random", "snip", "grasp", "synflow", "spode",
                                              "woodfisher", "lr", "swap"},
      channels{"l1", "l2", "lamp", "bn", "taylor", "random"};
  return structured ? channels : masks;
}

namespace {
constexpr std::string_view kFusionPrefix = "intrafusion:";
}

std::string sweep_criterion(bool structured, const std::string& method) {
  return structured && method.starts_with(kFusionPrefix) ? method.substr(kFusionPrefix.size()) : method;
}

void set_sweep_method(PruneSpec& spec, const std::string& method) {
  if (!spec.structured) {
    spec.method = method;
    return;
  }
  spec.method = method.starts_with(kFusionPrefix) ? "intrafusion" : "remove";
  spec.importance = sweep_criterion(true, method);
}

Shape image_shape(const OpenedData& d) { return {1, d.channels, d.input_size, d.input_size}; }

void prune_model(nn::Module& model, const PruneSpec& spec, const OpenedData& data) {
  SHEARS_CHECK(spec.score_batches > 0 && spec.batch_size > 0, "--score-batches", "and --batch-size must be positive");
  SHEARS_CHECK(spec.bn_recalibrate >= 0, "--bn-recalibrate", "must be >= 0, got ", spec.bn_recalibrate);
  if (spec.structured)
    prune_structured(model, spec, data);
  else
    prune_unstructured(model, spec, data);
  if (spec.bn_recalibrate > 0 && (spec.structured || spec.method != "spode")) {
    PruneSpec draw = spec;
    draw.score_batches = spec.bn_recalibrate;
    draw.seed = spec.seed + 1;  // other batches than the scores saw
    prune::recalibrate_batch_norm(model, scoring_batches(draw, data));
  }
}

void fine_tune(nn::Module& model, const FineTune& ft, const OpenedData& d, uint64_t seed) {
  optim::Sgd opt(optim::decay_groups(model.named_parameters(), ft.lr, ft.weight_decay, true),
                 {ft.lr, ft.momentum, 0.0, ft.weight_decay, false});
  data::DataLoader loader(d.splits.train, d.train_transform, {ft.batch_size, true, true, seed, 2, 2});
  int64_t iters = loader.num_batches();
  SHEARS_CHECK(iters > 0, "fine-tune", "the training set (", d.splits.train->size(), " samples) is smaller than one batch of ",
               ft.batch_size);
  model.train();
  for (int64_t epoch = 0; epoch < ft.epochs; ++epoch) {
    default_generator().seed(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));  // dropout: f(seed, epoch)
    loader.start_epoch(epoch);
    Progress progress("fine-tune " + std::to_string(epoch + 1) + "/" + std::to_string(ft.epochs), iters);
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, step = 0;
    while (auto batch = loader.next()) {
      double t = static_cast<double>(epoch * iters + step) / (ft.epochs * iters);
      opt.scale_lr(0.5 * (1 + std::cos(std::numbers::pi * t)));
      Tensor logits = model(batch->images);
      Tensor loss = cross_entropy(logits, batch->labels);
      float value = loss.item();
      SHEARS_CHECK(std::isfinite(value), "fine-tune", "the loss became ", value, " at epoch ", epoch + 1,
                   ". Hint: lower --lr (now ", ft.lr, ")");
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += value * logits.size(0);
      correct += count_topk(logits, batch->labels, 1);
      seen += logits.size(0);
      char stats[64];
      std::snprintf(stats, sizeof stats, "loss %.4f acc %.2f%%", loss_sum / seen, 100.0 * correct / seen);
      progress.update(++step, stats);
    }
    progress.finish();
    std::printf("fine-tune epoch %lld/%lld  train loss %.4f  top-1 %.2f%%\n", (long long)epoch + 1,
                (long long)ft.epochs, loss_sum / seen, 100.0 * correct / seen);
  }
  model.eval();
}

SizeCounts count_size(nn::Module& model, const Shape& input_shape) {
  SizeCounts s;
  for (const auto& [name, value] : model.named_parameters()) {
    s.size += value.numel();
    s.size_nz += nonzeros(model, name);
  }
  for (const nn::LayerSummary& layer : nn::summarize(model, input_shape).layers) {
    s.macs += layer.macs;
    if (layer.macs == 0) continue;
    std::string weight = layer.name.empty() ? "weight" : layer.name + ".weight";
    int64_t numel = model.parameter(weight).numel();
    s.macs_nz += layer.macs / numel * nonzeros(model, weight);  // MACs = positions × weight entries
  }
  return s;
}

double LayerDensity::sparsity() const { return 1.0 - static_cast<double>(nonzero) / numel(before); }

std::vector<LayerDensity> layer_densities(const nn::Module& dense, const nn::Module& pruned) {
  std::vector<LayerDensity> layers;
  for (const std::string& name : prune::prunable_parameters(dense))
    layers.push_back({name, dense.parameter(name).shape(), pruned.parameter(name).shape(), nonzeros(pruned, name)});
  return layers;
}

double total_sparsity(const std::vector<LayerDensity>& layers) {
  int64_t total = 0, nonzero = 0;
  for (const LayerDensity& l : layers) {
    total += numel(l.before);
    nonzero += l.nonzero;
  }
  return total ? 1.0 - static_cast<double>(nonzero) / total : 0.0;
}

Command add_prune_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("prune", "Prune a checkpoint, evaluate it, optionally fine-tune it");
  auto c = std::make_shared<PruneConfig>();
  cli->add_option("--weights,-w", c->weights, "a checkpoint written by shears train")->required()->check(CLI::ExistingFile);
  add_data_flags(*cli, c->data);
  cli->add_option("--method", c->spec.method, "magnitude, random, snip, grasp, synflow, spode, swap, lr or woodfisher")
      ->capture_default_str();
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
