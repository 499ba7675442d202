// `shears prune`: one pruning step on a trained checkpoint (issue 7). Evaluates the model before
// pruning, right after, and after an optional fine-tuning with the masks fixed; prints parameters,
// MACs, theoretical and measured speed-up and a per-layer sparsity table; writes the pruned
// checkpoint and metrics.json.
//
// metrics.json uses ShrinkBench's vocabulary (ECOSYSTEM.md §1.8): `size` and `flops` are the dense
// model's (before pruning), `size_nz` and `flops_nz` the pruned model's nonzero parameters and
// FLOPs, so that `compression_ratio` = size / size_nz and `theoretical_speedup` = flops / flops_nz
// compare the two for masks and channel removal alike. FLOPs = 2 × MACs, per image, Conv2d and
// Linear only (nn/summary.hpp); `macs`/`macs_nz` are given too. `loss`, `acc1`, `acc5` are the
// final model's (fine-tuned if --finetune-epochs > 0), on the test split, accuracies in percent;
// `dense`, `pruned` and `finetuned` hold the three evaluations. `sparsity` is the fraction of
// zeros among all Conv2d/Linear weights of the dense model (removed channels count as zeros),
// `layers` the same per tensor. `latency_ms` times a forward of one test batch (median, std;
// the two models alternate).
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
#include "prune/masks.hpp"
#include "prune/spode.hpp"
#include "prune/structured.hpp"

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
    prune::SpodeResult result = prune::spode_prune(model, names, target, loader, options);
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
    throw Error("--method: unknown method '" + spec.method + "'; expected magnitude, random, snip, grasp, synflow or spode");
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

void prune_structured(nn::Module& model, const PruneSpec& spec, const OpenedData& d) {
  SHEARS_CHECK(spec.scope.include.empty(), "--scope-include",
               "selects weights for unstructured pruning; with --structured every channel group is prunable unless "
               "--scope-exclude names its layers");
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
  Generator gen(spec.seed);
  prune::Importance importance;
  if (spec.importance == "l1" || spec.importance == "l2") {
    importance = prune::magnitude_importance(spec.importance == "l1" ? 1 : 2);
  } else if (spec.importance == "bn") {
    importance = prune::bn_scale_importance();
  } else if (spec.importance == "random") {
    importance = prune::random_importance(gen);
  } else if (spec.importance == "taylor") {
    // Gradients of the loss summed over the scoring batches, in eval mode (running BN statistics).
    bool was_training = model.is_training();
    model.eval();
    model.zero_grad();
    for (const data::Batch& batch : scoring_batches(spec, d)) cross_entropy(model(batch.images), batch.labels).backward();
    model.train(was_training);
    importance = prune::taylor_importance();
  } else {
    throw Error("--importance: unknown importance '" + spec.importance + "'; expected l1, l2, bn, taylor or random");
  }
  prune::prune_channels(model, image_shape(d), importance, target, ignored);
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
  std::printf("%-11s loss %.4f  top-1 %6.2f%%  top-5 %6.2f%%\n", label, r.loss, r.top1, r.top5);
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
  SHEARS_CHECK(!(c.spec.structured && cli.count("--method")), "--method",
               "chooses an unstructured criterion; with --structured choose a channel --importance");
  SHEARS_CHECK(c.latency_runs > 0, "--latency-runs", "must be positive, got ", c.latency_runs);
  c.spec.seed = c.data.seed;
  c.ft.batch_size = c.spec.batch_size;
  if (c.spec.method == "spode") {
    fs::create_directories(c.output);
    c.spec.spode_trace = (fs::path(c.output) / "spode_trace.csv").string();
  }
  OpenedData d = open_data(c.data);
  std::shared_ptr<nn::Module> model = nn::load_model(c.weights);
  std::shared_ptr<nn::Module> dense = model->clone();
  Shape input = image_shape(d);
  std::string what = c.spec.structured ? "channels by " + c.spec.importance : c.spec.method;
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
      {"method", c.spec.structured ? "structured" : c.spec.method}, {"structured", c.spec.structured},
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
  cli.add_option("--importance", s.importance, "with --structured: l1, l2, bn, taylor or random")->capture_default_str();
  cli.add_option("--round-to", s.round_to, "with --structured: keep a multiple of this many channels")
      ->capture_default_str();
  cli.add_option("--score-batches", s.score_batches, "training batches scored by snip, grasp and taylor")
      ->capture_default_str();
  cli.add_option("--synflow-rounds", s.synflow_rounds)->capture_default_str();
  cli.add_option("--spode-steps", s.spode_steps, "spode: steps N of the mask ODE")->capture_default_str();
  cli.add_option("--spode-radius", s.spode_radius, "spode: step radius over the smallest feasible (> 1)")
      ->capture_default_str();
}

void add_finetune_flags(CLI::App& cli, FineTune& ft) {
  cli.add_option("--finetune-epochs", ft.epochs, "fine-tune with the masks fixed (0: off)")->capture_default_str();
  cli.add_option("--lr", ft.lr, "fine-tuning learning rate (cosine-decayed)")->capture_default_str();
  cli.add_option("--momentum", ft.momentum)->capture_default_str();
  cli.add_option("--weight-decay,--wd", ft.weight_decay)->capture_default_str();
}

const std::vector<std::string>& criteria(bool structured) {
  static const std::vector<std::string> masks{"magnitude", "random", "snip", "grasp", "synflow", "spode"},
      channels{"l1", "l2", "bn", "taylor", "random"};
  return structured ? channels : masks;
}

Shape image_shape(const OpenedData& d) { return {1, d.channels, d.input_size, d.input_size}; }

void prune_model(nn::Module& model, const PruneSpec& spec, const OpenedData& data) {
  SHEARS_CHECK(spec.score_batches > 0 && spec.batch_size > 0, "--score-batches", "and --batch-size must be positive");
  if (spec.structured)
    prune_structured(model, spec, data);
  else
    prune_unstructured(model, spec, data);
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
  cli->add_option("--method", c->spec.method, "magnitude, random, snip, grasp, synflow or spode")->capture_default_str();
  cli->add_option("--sparsity", c->spec.sparsity, "fraction of the prunable weights set to zero")->required();
  add_prune_flags(*cli, c->spec);
  add_finetune_flags(*cli, c->ft);
  cli->add_option("--batch-size,-b", c->spec.batch_size, "batch size for scoring and fine-tuning")->capture_default_str();
  cli->add_option("--latency-runs", c->latency_runs, "timed forwards of one test batch, before and after")
      ->capture_default_str();
  cli->add_option("--seed", c->data.seed)->capture_default_str();
  cli->add_option("--threads", c->threads, "threads (0: SHEARS_NUM_THREADS or all cores)");
  cli->add_option("--output,-o", c->output, "folder for pruned.safetensors and metrics.json")->required();
  return {cli, [c, cli] { return run(*c, *cli); }};
}

}  // namespace shears::app
