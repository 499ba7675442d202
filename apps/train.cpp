// `shears train`: trains a model from the zoo on a dataset, with a run folder holding the resolved
// config, summary.csv (a row per epoch), events.jsonl, and last/best checkpoints (+ the training
// state for --resume: weights and optimizer state in one file). Epoch e's shuffling, augmentation
// and dropout depend only on (seed, e), so resuming from the end of an epoch reproduces the
// uninterrupted run.
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <tuple>

#include "apps/commands.hpp"
#include "apps/config_file.hpp"
#include "apps/prune_flags.hpp"
#include "apps/session.hpp"
#include "core/autograd.hpp"
#include "core/config_file.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/random.hpp"
#include "distributed/communicator.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"
#include "pipeline/split_data.hpp"
#include "prune/algorithms/sfw.hpp"
#include "train/loop.hpp"
#include "train/run_folder.hpp"
#include "train/run_log.hpp"
#include "train/state.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

struct TrainConfig {
  std::string model = "mlpnet", variant = "cifar";
  std::vector<int64_t> widths;  // explicit layer widths (each model's header lists which layers)
  float width_multiplier = 1.f;
  std::string cfg, head = "gap";    // cnn
  bool batch_norm = false;          // cnn, mlp, mlpnet
  std::string protocol = "shears";  // official: SFW's official training setup (prune/methods/protocols.cpp)
  bool print_config = false;
  DataChoice data;
  int64_t batch_size = 128, epochs = 10;
  std::string opt = "sgd";
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = false, decay_all = false;
  std::string sched = "cosine";
  int64_t warmup_epochs = 0, decay_epochs = 30;
  std::vector<int64_t> decay_milestones;
  double decay_rate = 0.1, min_lr = 0.0, warmup_factor = 0.1, label_smoothing = 0.0, clip_grad = 0.0;
  // --opt sfw: per-tensor K-sparse polytopes sized from the initial weights
  // (docs/algorithms/sfw.md#sizing-the-constraints).
  std::string sfw_constraint = "k-sparse", sfw_tau_mode = "initialization", sfw_rescale = "gradient", sfw_scope = "all";
  int64_t sfw_k = 10, sfw_init_iters = 390;
  double sfw_k_frac = 0.05, sfw_tau = 15.0, sfw_unconstrained_lr = 0.1;
  bool sfw_init = false;
  int threads = 0;
  bool distributed = false;  // data-parallel over mpirun's ranks; batch_size is per rank (DDP)
  // --split-data K: K models on K fixed parts of the training set, then fused (run_split_data).
  int64_t split_data = 0;
  int64_t split_part = -1;  // the part one run() trains (set by run_split_data)
  double split_sparsity = 0.5;  // PaF and FaP channel sparsity
  int64_t split_finetune_epochs = 0;
  double split_finetune_lr = 0.01;
  int64_t split_bn_batches = 20;  // BatchNorm re-estimation of each combination (0: off)
  int64_t stop_after = 0;  // epochs to run in this invocation (0: to the end)
  bool skip_nonfinite = false;  // skip steps whose loss or gradients hold NaN/Inf instead of stopping
  bool overwrite = false;       // replace the run the output folder holds
  std::string output, resume, config;
  std::string initial_checkpoint;  // weights to start from (fine-tuning); fresh optimizer and schedule
};

// The first SIGINT (Ctrl-C) or SIGTERM stops training after the current step with the weights in
// interrupted.safetensors, exit code 128 + the signal (130, 143); a second one ends the process
// at once (the default action, restored here: signal() is async-signal-safe).
std::atomic<bool> interrupted{false};
std::atomic<int> interrupt_signal{0};
extern "C" void on_interrupt(int sig) {
  interrupt_signal = sig;
  interrupted = true;
  std::signal(sig, SIG_DFL);
}

// Installs on_interrupt for the training loop; the default actions come back however it ends
// (an error too, so that a signal then ends the process).
struct InterruptHandlers {
  InterruptHandlers() {
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
  }
  ~InterruptHandlers() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;
};

template <class T>
T sfw_choice(const std::string& flag, const std::string& value, const std::vector<std::pair<std::string, T>>& choices) {
  std::string names;
  for (const auto& [name, v] : choices) {
    if (name == value) return v;
    names += (names.empty() ? "" : ", ") + name;
  }
  throw Error(flag + ": unknown value '" + value + "'; expected " + names);
}

prune::ConstraintOptions constraint_options(const TrainConfig& c) {
  prune::ConstraintOptions co;
  co.kind = sfw_choice<prune::ConstraintKind>("--sfw-constraint", c.sfw_constraint,
                                              {{"k-sparse", prune::ConstraintKind::k_sparse}, {"l1", prune::ConstraintKind::l1},
                                               {"l2", prune::ConstraintKind::l2}, {"linf", prune::ConstraintKind::linf}});
  co.scope = sfw_choice<prune::ConstraintScope>("--sfw-scope", c.sfw_scope,
                                                {{"all", prune::ConstraintScope::all_params},
                                                 {"conv-linear", prune::ConstraintScope::conv_linear_weights}});
  co.mode = sfw_choice<prune::RadiusMode>("--sfw-tau-mode", c.sfw_tau_mode,
                                          {{"initialization", prune::RadiusMode::initialization},
                                           {"radius", prune::RadiusMode::radius}, {"diameter", prune::RadiusMode::diameter}});
  co.k_abs = c.sfw_k;
  co.k_frac = c.sfw_k_frac;
  co.tau = c.sfw_tau;
  return co;
}

prune::SfwOptions sfw_options(const TrainConfig& c) {
  prune::SfwOptions so;
  so.lr = c.lr;
  so.momentum = c.momentum;
  so.rescale = sfw_choice<prune::Rescale>("--sfw-rescale", c.sfw_rescale,
                                          {{"gradient", prune::Rescale::gradient}, {"diameter", prune::Rescale::diameter},
                                           {"none", prune::Rescale::none}});
  so.unconstrained_lr = c.sfw_unconstrained_lr;
  return so;
}

// --opt sfw: the constraints are sized from `params` as given, so this must see the freshly
// initialised model (a resumed run rebuilds it from the same seed); tensors are made feasible.
std::unique_ptr<optim::Optimizer> make_sfw(const TrainConfig& c, const optim::NamedTensors& params) {
  auto opt =
      std::make_unique<prune::Sfw>(params, prune::make_constraints(params, constraint_options(c)), sfw_options(c));
  opt->make_feasible();
  return opt;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c, const optim::NamedTensors& params) {
  if (c.opt == "sfw") return make_sfw(c, params);
  auto groups = optim::decay_groups(params, c.lr, c.weight_decay, !c.decay_all);
  if (c.opt == "sgd") return std::make_unique<optim::Sgd>(groups, optim::SgdOptions{c.lr, c.momentum, 0.0, c.weight_decay, c.nesterov});
  if (c.opt == "adam" || c.opt == "adamw") {
    optim::AdamOptions o = c.opt == "adamw" ? optim::adamw_defaults() : optim::AdamOptions{};
    o.lr = c.lr;
    o.weight_decay = c.weight_decay;
    return std::make_unique<optim::Adam>(groups, o);
  }
  throw Error("--opt: unknown optimizer '" + c.opt + "'; expected sgd, adam, adamw or sfw");
}

// Flags that may change when a run resumes: where it runs and how fast, not what it computes.
// (--config, --resume, --stop-after and --overwrite are not recorded at all: not configurable.)
const std::set<std::string> kResumeMayChange{"output", "threads", "workers", "skip-nonfinite"};

// --sched keep|decrease_3|decrease_3_180|dynamic_change: SFW's per-epoch schemes
// (docs/algorithms/sfw.md#learning-rate-schemes).
std::optional<prune::LrScheme> epoch_scheme(const std::string& sched) {
  for (const char* name : {"keep", "decrease_3", "decrease_3_180", "dynamic_change"})
    if (sched == name) return prune::lr_scheme_from_string(sched);
  return std::nullopt;
}

std::vector<Tensor> values(const optim::NamedTensors& named) {
  std::vector<Tensor> out;
  for (const auto& [name, t] : named) out.push_back(t);
  return out;
}

// Each rank evaluated its shard of the data: the figures over all of it.
EvalResult combine(const dist::Communicator& comm, EvalResult r) {
  std::vector<double> sums{r.loss * r.samples, r.top1 * r.samples / 100, r.top5 * r.samples / 100,
                           static_cast<double>(r.samples)};
  comm.sum(sums);
  r.samples = static_cast<int64_t>(sums[3]);
  r.loss = sums[0] / sums[3];
  r.top1 = 100 * sums[1] / sums[3];
  r.top5 = 100 * sums[2] / sums[3];
  return r;
}

// Ranks on one machine share its cores: without --threads or SHEARS_NUM_THREADS each takes its part.
int threads_per_rank(int requested, const dist::Communicator& comm) {
  if (requested > 0 || comm.local_size() == 1 || std::getenv("SHEARS_NUM_THREADS")) return requested;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / comm.local_size());
}

// Flags that only mean something with another one: set (to other than their default; a run's
// config.toml lists every flag) without it, they would be ignored.
void check_flag_combinations(const TrainConfig& c, const CLI::App& cli) {
  for (const CLI::Option* option : cli.get_options()) {
    const std::string name = option->get_lnames().empty() ? "" : option->get_lnames().front();
    const bool is_default = option->results() == std::vector<std::string>{option->get_default_str()} ||
                            (option->get_expected_max() == 0 && !option->as<bool>());  // a flag left off
    if (!option->count() || is_default) continue;
    SHEARS_CHECK(name.rfind("sfw", 0) != 0 || c.opt == "sfw", "--" + name, "configures the SFW optimizer: with --opt ",
                 c.opt, " it would be ignored (give --opt sfw)");
    SHEARS_CHECK(name.rfind("split-", 0) != 0 || name == "split-data" || c.split_data > 0, "--" + name,
                 "configures --split-data K: without it the flag would be ignored");
  }
  SHEARS_CHECK(c.opt == "sgd" || c.opt == "adam" || c.opt == "adamw" || c.opt == "sfw", "--opt", "unknown optimizer '",
               c.opt, "'; expected sgd, adam, adamw or sfw");
  if (c.opt == "sfw") {
    constraint_options(c);
    sfw_options(c);
  }
}

void check_run_flags(const TrainConfig& c) {
  SHEARS_CHECK(c.batch_size > 0 && c.epochs > 0, "train", "--batch-size and --epochs must be positive");
  SHEARS_CHECK(!c.output.empty(), "train", "--output DIR is required (the run folder)");
  SHEARS_CHECK(!(c.distributed && c.sfw_init), "train",
               "--sfw-init runs its own training loop, which is not distributed");
  SHEARS_CHECK(!(c.overwrite && !c.resume.empty()), "train", "--overwrite replaces the run in the folder and --resume ",
               "continues it: give one of them");
  SHEARS_CHECK(c.initial_checkpoint.empty() || c.resume.empty(), "train", "--initial-checkpoint starts a run from ",
               "weights and --resume continues one: give one of them");
}

// The locked run folder gets its config.toml; files a run killed while saving left are removed.
void clean_folder(const fs::path& dir, const std::string& config) {
  for (const std::string& tmp : safetensors::remove_temp_files(dir.string()))
    std::printf("removed %s, left by a run killed while saving\n", tmp.c_str());
  std::ofstream(dir / "config.toml") << config;
}

// The state of the run --resume continues; an SFW epoch scheme needs every epoch's loss.
train::TrainingProgress resume_state(const TrainConfig& c, const fs::path& state, nn::Module& model,
                                     optim::Optimizer& opt, const std::string& config, bool epoch_scheme) {
  train::TrainingProgress progress = train::load_training_state(state, model, opt, config, kResumeMayChange);
  SHEARS_CHECK(!epoch_scheme || static_cast<int64_t>(progress.epoch_losses.size()) == progress.epochs_done,
               state.string(), "holds the losses of ", progress.epoch_losses.size(), " epochs, not ",
               progress.epochs_done, ": the lr scheme '", c.sched,
               "' needs them (written by an older shears? start the run again)");
  return progress;
}

void print_end(const TrainConfig& c, int64_t last_epoch, double best_top1, bool held_out) {
  const fs::path dir(c.output);
  if (last_epoch < c.epochs)
    std::printf("stopped after epoch %lld of %lld; continue with --resume %s\n", (long long)last_epoch,
                (long long)c.epochs, (dir / "last.safetensors").c_str());
  else if (best_top1 < 0)
    std::printf("done: no epoch had a finite %s loss, so there is no best.safetensors; run folder %s\n",
                held_out ? "val" : "test", dir.c_str());
  else
    std::printf("done: best %s top-1 %.2f%%; run folder %s (summary.csv, events.jsonl, last/best.safetensors)\n",
                held_out ? "val" : "test", best_top1, dir.c_str());
}

// --split-data: part k of a split fixed by the seed.
std::shared_ptr<const data::Dataset> split_part(const std::shared_ptr<const data::Dataset>& train,
                                                const TrainConfig& c) {
  const int64_t n = train->size(), parts = c.split_data;
  std::vector<int64_t> lengths;
  for (int64_t k = 0; k < parts; ++k) lengths.push_back(n / parts + (k < n % parts));
  return data::random_split(train, lengths, c.data.seed)[c.split_part];
}

// The zoo's model for the data, initialised from the seed (+ k for part k of --split-data).
std::shared_ptr<nn::Module> build_model(const TrainConfig& c, const OpenedData& d) {
  nn::ModelOptions mo;
  mo.in_channels = d.channels;
  mo.num_classes = d.num_classes;
  mo.input_size = d.input_size;
  mo.variant = nn::parse_variant(c.variant);
  mo.widths = c.widths;
  mo.width_multiplier = c.width_multiplier;
  mo.cfg = c.cfg;
  mo.batch_norm = c.batch_norm;
  mo.head = c.head;
  Generator init_gen(c.data.seed + static_cast<uint64_t>(std::max<int64_t>(0, c.split_part)));
  return nn::make_model(c.model, mo, init_gen);
}

// The model records the data's input contract, and starts from --initial-checkpoint's weights
// when given (a fresh run: a resumed one has its own).
void start_from(const TrainConfig& c, const OpenedData& d, nn::Module& model) {
  for (const auto& [key, value] : data::contract_metadata(d.contract)) model.metadata()[key] = value;
  if (c.initial_checkpoint.empty() || !c.resume.empty()) return;
  for (const std::string& name : nn::load_initial_weights(model, c.initial_checkpoint))
    std::printf("%s: %s reinitialised (the checkpoint has another class count than the data's %lld)\n",
                c.initial_checkpoint.c_str(), name.c_str(), (long long)d.num_classes);
  std::printf("starting from the weights of %s\n", c.initial_checkpoint.c_str());
}

// The per-step schedule; an epoch scheme of SFW's sets the factor itself (the schedule stays constant).
std::unique_ptr<optim::Schedule> make_schedule(const TrainConfig& c, int64_t iters, bool epoch_scheme) {
  optim::ScheduleOptions so{c.sched,
                            c.epochs * iters,
                            c.decay_epochs * iters,
                            {},
                            c.decay_rate,
                            c.lr > 0 ? c.min_lr / c.lr : 0.0,
                            c.warmup_epochs * iters,
                            c.warmup_factor};
  for (int64_t m : c.decay_milestones) so.milestones.push_back(m * iters);
  if (epoch_scheme) so.name = "constant";
  return optim::make_schedule(so);
}

// Every value and combination, before the data is read.
void check_flags(const TrainConfig& c, const CLI::App& cli) {
  check_run_flags(c);
  check_flag_combinations(c, cli);
  make_schedule(c, 1, epoch_scheme(c.sched).has_value());  // an unknown --sched
}

// SFW-Init (docs/algorithms/sfw.md#sfw-init), on its own shuffle.
void run_sfw_init(const TrainConfig& c, const OpenedData& d, nn::Module& model, prune::Sfw& opt) {
  data::DataLoader init_loader(d.splits.train, d.train_transform,
                               {c.batch_size, true, true, c.data.seed + 1, c.data.workers, 2});
  auto r = prune::sfw_init(model, opt, data::endless_batches(init_loader, "--sfw-init"), {.iters = c.sfw_init_iters});
  std::printf("sfw-init: %lld iterations (first-order approximation: no double backward), loss %.4f -> %.4f\n",
              (long long)r.iters, r.first_loss, r.last_loss);
}

void print_header(const TrainConfig& c, const OpenedData& d, const nn::Module& model, int64_t shards) {
  std::printf("train %s on %s: %lld train / %lld test images, %lldx%lld, %lld classes, %lld parameters\n",
              c.model.c_str(), d.splits.name.c_str(), (long long)d.splits.train->size(),
              (long long)d.splits.test->size(), (long long)d.input_size, (long long)d.input_size,
              (long long)d.num_classes, (long long)model.num_parameters());
  if (shards > 1)
    std::printf("distributed: %lld ranks x batch %lld (global batch %lld), %d threads per rank\n", (long long)shards,
                (long long)c.batch_size, (long long)(shards * c.batch_size), num_threads());
}

// After a signal: the weights in interrupted.safetensors, exit code 128 + the signal.
int stop_interrupted(const nn::Module& model, const fs::path& dir, bool root, int64_t epoch, int64_t steps) {
  if (root) model.save_checkpoint((dir / "interrupted.safetensors").string());
  const int sig = interrupt_signal ? interrupt_signal.load() : SIGINT;  // (another rank's signal)
  std::printf(
      "interrupted (%s) at epoch %lld step %lld: weights saved to %s; --resume %s continues from the last "
      "completed epoch\n",
      sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)epoch + 1, (long long)steps,
      (dir / "interrupted.safetensors").c_str(), (dir / "last.safetensors").c_str());
  return 128 + sig;
}

// The epoch's line, and notes of skipped steps and of non-finite logits.
void print_epoch(const train::EpochRecord& r, int64_t epochs, int64_t steps) {
  char val_text[64] = "";
  if (r.val) std::snprintf(val_text, sizeof val_text, "  val loss %.4f top-1 %.2f%%", r.val->loss, r.val->top1);
  std::printf(
      "epoch %lld/%lld  train loss %.4f top-1 %.2f%%%s  test loss %.4f top-1 %.2f%% top-5 %.2f%%  lr %.5f  %s "
      "(%.0f img/s)\n",
      (long long)r.epoch, (long long)epochs, r.train_loss, r.train_top1, val_text, r.test.loss, r.test.top1,
      r.test.top5, r.lr, format_duration(r.seconds).c_str(), r.images_per_second);
  if (r.skipped_steps)
    std::printf("  skipped %lld of %lld steps (non-finite loss or gradients)\n", (long long)r.skipped_steps,
                (long long)steps);
  const EvalResult& chosen_on = r.val ? *r.val : r.test;  // the best epoch is chosen on it
  if (chosen_on.nonfinite > 0)
    std::printf("  %lld %s images have non-finite logits (counted wrong)\n", (long long)chosen_on.nonfinite,
                r.val ? "val" : "test");
}

// Data-parallel: the all-reduce's cost and a check that every rank holds the same weights.
// Returns the all-reduce time per step (ms).
double print_sync(dist::Communicator& comm, const std::vector<Tensor>& params, const std::vector<Tensor>& buffers,
                  double train_seconds) {
  std::vector<Tensor> state = params;
  state.insert(state.end(), buffers.begin(), buffers.end());
  const uint64_t checksum = comm.verify_identical(state);
  const dist::SyncStats& s = comm.sync_stats();
  const double allreduce_ms = 1e3 * s.seconds / std::max<int64_t>(1, s.calls);
  std::printf(
      "  all-reduce %.2f ms/step (%.1f%% of training time; waiting for the slowest rank included), "
      "%.2f MiB in %.0f bucket(s) per step; weights identical on %lld ranks (checksum %016llx)\n",
      allreduce_ms, 100 * s.seconds / train_seconds, s.bytes / 1048576.0 / std::max<int64_t>(1, s.calls),
      double(s.buckets) / std::max<int64_t>(1, s.calls), (long long)comm.size(), (unsigned long long)checksum);
  comm.reset_sync_stats();
  return allreduce_ms;
}

// The loop's settings for `shears train`: the flags' options, with a progress bar, the skip notes
// and the non-finite error (naming the last checkpoint and the flags that help) in the terminal.
train::LoopOptions loop_options(const TrainConfig& c, int64_t iters, int64_t shard, std::unique_ptr<Progress>& progress,
                                std::function<double(int64_t, int64_t)> lr_factor, std::function<bool()> after_backward,
                                const fs::path& dir) {
  train::LoopOptions o;
  o.label_smoothing = static_cast<float>(c.label_smoothing);
  o.clip_grad = c.clip_grad;
  o.seed = c.data.seed;
  o.stream = static_cast<uint64_t>(shard);
  o.lr_factor = std::move(lr_factor);
  o.after_backward = std::move(after_backward);
  o.nonfinite.skip = c.skip_nonfinite;
  o.nonfinite.explain = [&c, iters, dir](const std::string& problem, bool gave_up) {
    const bool gave_up_skipping = c.skip_nonfinite && gave_up;
    return detail::concat("train: ", problem, gave_up_skipping ? "; the last " + std::to_string(iters) : "",
                          gave_up_skipping ? " steps (an epoch's worth) were all skipped" : "",
                          fs::exists(dir / "last.safetensors")
                              ? "; the last checkpoint is " + (dir / "last.safetensors").string()
                              : "; no checkpoint was written yet",
                          ". Hint: lower --lr (now ", c.lr, ") or add --clip-grad",
                          c.skip_nonfinite ? "" : "; --skip-nonfinite skips such steps");
  };
  o.hooks.epoch_start = [&progress, &c](int64_t epoch, int64_t steps) {
    progress = std::make_unique<Progress>("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs), steps);
  };
  o.hooks.step = [&progress](const train::EpochStats& s) {
    char stats[128];
    std::snprintf(stats, sizeof stats, "loss %.4f acc %.2f%% %.0f img/s", s.mean_loss(), s.top1(), s.seen / s.seconds);
    progress->update(s.steps, stats);
  };
  o.hooks.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  return o;
}

int run(TrainConfig c, CLI::App& cli) {
  dist::Communicator comm(c.distributed);
  c.threads = threads_per_rank(c.threads, comm);
  if (c.threads > 0) set_num_threads(c.threads);
  const bool root = comm.is_root();
  if (!root) SHEARS_CHECK(std::freopen("/dev/null", "w", stdout), "train", "cannot silence rank ", comm.rank());  // rank 0 reports
  check_flags(c, cli);
  fs::path dir(c.output);
  const std::string config = cli.config_to_str(true, false);

  OpenedData d = open_data(c.data);
  data::training_images(d, "train");
  if (c.split_part >= 0) d.splits.train = split_part(d.splits.train, c);
  std::shared_ptr<nn::Module> model = build_model(c, d);
  start_from(c, d, *model);
  const std::vector<Tensor> params = model->parameters(), buffers = values(model->named_buffers());
  comm.broadcast(params);  // the same seed gives the same weights anyway; this makes it a fact
  comm.broadcast(buffers);
  auto opt = make_optimizer(c, model->named_parameters());

  // Every loader yields this rank's shard: per-rank batches of --batch-size, like DDP.
  const int64_t shards = comm.size(), shard = comm.rank();
  data::DataLoader train_loader(d.splits.train, d.train_transform,
                                {c.batch_size, true, true, c.data.seed, c.data.workers, 2, shards, shard});
  data::DataLoader test_loader(d.splits.test, d.test_transform,
                               {256, false, false, c.data.seed, c.data.workers, 2, shards, shard});
  std::unique_ptr<data::DataLoader> val_loader;  // --val-fraction: held out from train, evaluated like test
  if (d.splits.val)
    val_loader = std::make_unique<data::DataLoader>(
        d.splits.val, d.test_transform, data::LoaderOptions{256, false, false, c.data.seed, c.data.workers, 2, shards, shard});
  int64_t iters = train_loader.num_batches();
  SHEARS_CHECK(iters > 0, "train", "the training set (", d.splits.train->size(),
               " samples) is smaller than one batch of ", c.batch_size, (shards > 1 ? " per rank" : ""));
  const std::optional<prune::LrScheme> scheme = epoch_scheme(c.sched);
  auto schedule = make_schedule(c, iters, scheme.has_value());

  const fs::path state = fs::path(c.resume).replace_extension(".optim.safetensors");
  train::TrainingProgress resumed;
  if (!c.resume.empty()) resumed = resume_state(c, state, *model, *opt, config, scheme.has_value());
  const int64_t first_epoch = resumed.epochs_done;
  std::vector<double>& epoch_losses = resumed.epoch_losses;  // mean training loss of every finished epoch
  // The folder is made (and locked) only now that the flags, the data, the model and any state to
  // resume from are known good: a run refused before its first epoch leaves no folder behind.
  std::optional<train::RunFolder> folder;
  if (root) {
    folder.emplace(dir, train::RunFolderOptions{.resume_from = c.resume, .overwrite = c.overwrite});
    clean_folder(dir, config);
  }
  train::RunLog log(dir, root, first_epoch, resumed.best_top1);
  if (!c.resume.empty())
    std::printf("resumed from %s (weights and optimizer state) after epoch %lld\n", state.c_str(),
                (long long)first_epoch);

  if (c.opt == "sfw" && c.sfw_init && first_epoch == 0) run_sfw_init(c, d, *model, dynamic_cast<prune::Sfw&>(*opt));
  print_header(c, d, *model, shards);
  InterruptHandlers interrupt_handlers;
  std::unique_ptr<Progress> progress;
  train::Trainer trainer(*model, *opt,
                         loop_options(
                             c, iters, shard, progress,
                             [&](int64_t epoch, int64_t step) {
                               return scheme ? prune::lr_scheme_factor(*scheme, epoch, c.epochs, epoch_losses)
                                             : schedule->factor(epoch * iters + step);
                             },
                             [&] { return comm.average_gradients(params, interrupted); }, dir));

  int64_t last_epoch = c.stop_after > 0 ? std::min(c.epochs, first_epoch + c.stop_after) : c.epochs;
  for (int64_t epoch = first_epoch; epoch < last_epoch; ++epoch) {
    const train::EpochStats s = trainer.train_epoch(train_loader, epoch);
    progress->finish();
    if (s.stopped) return stop_interrupted(*model, dir, root, epoch, s.steps);
    // The ranks' figures become global; BN running statistics become rank 0's (DDP's broadcast_buffers).
    std::vector<double> totals{s.loss_sum, static_cast<double>(s.correct), static_cast<double>(s.seen)};
    comm.sum(totals);
    const double seen = totals[2];
    epoch_losses.push_back(totals[0] / seen);
    comm.broadcast(buffers);
    EvalResult test = combine(comm, evaluate(*model, test_loader, d.num_classes));
    std::optional<EvalResult> val;
    if (val_loader) val = combine(comm, evaluate(*model, *val_loader, d.num_classes));
    train::EpochRecord record{.epoch = epoch + 1,
                              .train_loss = totals[0] / seen,
                              .train_top1 = 100.0 * totals[1] / seen,
                              .test = test,
                              .val = val,
                              .lr = opt->param_groups().front().lr,
                              .seconds = s.seconds,
                              .images_per_second = seen / s.seconds,
                              .skipped_steps = s.skipped,
                              .ranks = shards,
                              .allreduce_ms = 0};
    print_epoch(record, c.epochs, s.steps);
    if (shards > 1) record.allreduce_ms = print_sync(comm, params, buffers, s.seconds);
    std::fflush(stdout);
    log.note_output_error(epoch + 1);
    log.record(record, *model, *opt, epoch_losses, config);
  }
  print_end(c, last_epoch, log.best_top1(), val_loader != nullptr);
  return 0;
}

// --split-data K (docs/algorithms/intra-fusion.md#split-data-paf-and-fap: the authors did
// not publish their procedure; this one is ours). K models, model k on part k of a random split of
// the training set (fixed by --seed) and initialised from seed + k, are trained with no
// communication: one per rank under mpirun with --distributed (each rank writes its part's run
// folder), else one after another. Rank 0 then combines their last weights (each rank sends its
// own, so no shared disk is needed) four ways (naive, ot, paf, fap: pipeline/split_data.hpp), each
// evaluated on the test set as is and after --split-finetune-epochs of fine-tuning on the whole
// training set, and each part alone. Writes DIR/part-k/ (each model's run folder), DIR/<name>.safetensors and
// DIR/split_data.csv.
int run_split_data(const TrainConfig& c, CLI::App& cli) {
  const int64_t parts = c.split_data;
  SHEARS_CHECK(parts >= 2, "--split-data", "needs at least 2 parts, got ", parts);
  SHEARS_CHECK(c.resume.empty() && c.stop_after == 0, "--split-data", "trains every part to the end: it cannot be ",
               "combined with --resume or --stop-after");
  SHEARS_CHECK(!c.output.empty(), "train", "--output DIR is required (the run folder)");
  dist::Communicator world(c.distributed);
  SHEARS_CHECK(!c.distributed || world.size() == parts, "--split-data", "trains one part per rank: start it with "
               "mpirun -np ", parts, ", got ", world.size(), " ranks");
  if (!world.is_root()) SHEARS_CHECK(std::freopen("/dev/null", "w", stdout), "train", "cannot silence rank ", world.rank());
  const fs::path dir(c.output);
  auto part_dir = [&](int64_t k) { return dir / ("part-" + std::to_string(k)); };
  std::vector<double> seconds(static_cast<size_t>(parts), 0.0);
  for (int64_t k = world.rank(); k < parts; k += world.size()) {
    TrainConfig part = c;
    part.distributed = false;
    part.split_part = k;
    part.threads = threads_per_rank(c.threads, world);
    part.output = part_dir(k).string();
    std::printf("== split-data part %lld of %lld\n", (long long)k + 1, (long long)parts);
    auto start = std::chrono::steady_clock::now();
    if (int status = run(part, cli); status != 0) return status;
    seconds[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  world.sum(seconds);
  std::vector<std::shared_ptr<nn::Module>> models(static_cast<size_t>(parts));
  for (int64_t k = world.rank(); k < parts; k += world.size())
    models[k] = nn::load_model((part_dir(k) / "last.safetensors").string());
  for (int64_t k = 0; k < parts; ++k) {
    if (!models[k]) models[k] = models[world.rank()]->clone();
    std::vector<Tensor> state = values(models[k]->named_parameters()), buffers = values(models[k]->named_buffers());
    state.insert(state.end(), buffers.begin(), buffers.end());
    world.broadcast(state, static_cast<int>(k));  // no-op in one process
  }
  if (!world.is_root()) return 0;

  OpenedData d = open_data(c.data);
  pipeline::SplitDataOptions o;
  o.sparsity = c.split_sparsity;
  o.bn_batches = c.split_bn_batches;
  o.finetune = {c.split_finetune_epochs, c.split_finetune_lr, c.momentum, c.weight_decay, c.batch_size};
  o.finetune_hooks = fine_tune_display(c.split_finetune_epochs);
  o.seed = c.data.seed;
  o.workers = c.data.workers;
  o.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  const std::vector<pipeline::SplitDataRow> rows = pipeline::combine_split_parts(models, seconds, d, dir, o);
  pipeline::write_split_table(dir, rows);

  const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
  std::printf("\nsplit-data: %lld parts trained in %.1f s each on average (%.1f s in all, %s)\n", (long long)parts,
              total / static_cast<double>(parts), total, world.size() > 1 ? "in parallel, one per rank" : "one after another");
  std::printf("%-8s %12s %11s %9s %12s %17s\n", "model", "parameters", "test top-1", "combine", "BN re-est.",
              "fine-tuned top-1");
  for (const pipeline::SplitDataRow& r : rows) {
    std::printf("%-8s %12lld %10.2f%%", r.name.c_str(), (long long)r.parameters, r.before.top1);
    if (r.combine_seconds) std::printf(" %8.2fs", *r.combine_seconds);
    if (r.recalibrated)
      std::printf(" %11.2f%%", r.recalibrated->top1);
    else if (r.combine_seconds)
      std::printf(" %12s", "-");
    if (r.after) std::printf(" %16.2f%%", r.after->top1);
    std::printf("\n");
  }
  std::printf("run folder %s: part-*/ (each model's run), naive/ot/paf/fap.safetensors, split_data.csv\n", dir.c_str());
  return 0;
}

// The flags of SFW's constraint sets and of SFW-Init (docs/algorithms/sfw.md#options).
void add_sfw_flags(CLI::App& cli, TrainConfig& c) {
  cli.add_option("--sfw-k-frac", c.sfw_k_frac, "sfw: K per tensor as a fraction (density) of its entries")
      ->capture_default_str();
  cli.add_option("--sfw-k", c.sfw_k, "sfw: minimum K per tensor (K = min(max(k, floor(frac*n)), n))")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli.add_option("--sfw-tau", c.sfw_tau, "sfw: tau (initialization: D = 2*tau*|theta_init|; radius; diameter)")
      ->capture_default_str();
  cli.add_option("--sfw-tau-mode", c.sfw_tau_mode, "sfw: initialization, radius or diameter")->capture_default_str();
  cli.add_option("--sfw-constraint", c.sfw_constraint, "sfw: k-sparse, l1, l2 or linf")->capture_default_str();
  cli.add_option("--sfw-scope", c.sfw_scope, "sfw: constrain all parameters (reference) or conv-linear weights")
      ->capture_default_str();
  cli.add_option("--sfw-rescale", c.sfw_rescale, "sfw: lr rescaling gradient, diameter or none")->capture_default_str();
  cli.add_option("--sfw-unconstrained-lr", c.sfw_unconstrained_lr, "sfw: SGD lr of unconstrained tensors")
      ->capture_default_str();
  cli.add_flag("--sfw-init", c.sfw_init, "sfw: learn the initial per-tensor scales first (SFW-Init)");
  cli.add_option("--sfw-init-iters", c.sfw_init_iters, "sfw: SFW-Init iterations")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
}

}  // namespace

Command add_train_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("train", "Train a model from the zoo");
  auto c = std::make_shared<TrainConfig>();
  // --config, --resume, --stop-after and --overwrite say what this invocation does with a run, not
  // what the run is: they are not written into its config.toml, nor read from a config file.
  cli->add_option("--config", c->config, "a TOML/INI file whose keys are these flags")
      ->check(CLI::ExistingFile)
      ->configurable(false);
  cli->add_option("--model", c->model, "architecture (see `shears info --models`)")->capture_default_str();
  cli->add_option("--variant", c->variant, "cifar (3x3 stem, no max-pool) or imagenet (torchvision's stem and head)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cifar", "imagenet"}));
  cli->add_option("--widths", c->widths, "comma-separated layer widths, e.g. vgg11_bn's 8 convs (see nn/models/)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cli->add_option("--width-multiplier", c->width_multiplier, "mobilenet_v1")->capture_default_str();
  add_cnn_flags(*cli, c->cfg, c->batch_norm, c->head);
  add_data_flags(*cli, c->data);
  cli->add_option("--batch-size,-b", c->batch_size)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--epochs", c->epochs)->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli->add_option("--opt", c->opt, "sgd, adam, adamw or sfw (Frank-Wolfe; use --lr 1, no weight decay)")->capture_default_str();
  cli->add_option("--lr", c->lr)->capture_default_str();
  cli->add_option("--momentum", c->momentum)->capture_default_str();
  cli->add_flag("--nesterov", c->nesterov);
  cli->add_option("--weight-decay,--wd", c->weight_decay)->capture_default_str();
  cli->add_flag("--decay-all", c->decay_all, "weight decay on biases and normalisation too");
  cli->add_option("--sched", c->sched,
                  "constant, step, multistep, cosine or onecycle (per iteration); SFW's per-epoch keep, decrease_3, "
                  "decrease_3_180 or dynamic_change")
      ->capture_default_str();
  cli->add_option("--warmup-epochs", c->warmup_epochs)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli->add_option("--warmup-factor", c->warmup_factor, "warm-up starts at this fraction of --lr")->capture_default_str();
  cli->add_option("--decay-epochs", c->decay_epochs, "step: epochs between decays")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli->add_option("--decay-milestones", c->decay_milestones, "multistep: epochs at which to decay")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli->add_option("--decay-rate", c->decay_rate, "step/multistep: factor per decay")->capture_default_str();
  cli->add_option("--min-lr", c->min_lr, "cosine: the final lr")->capture_default_str();
  cli->add_option("--label-smoothing", c->label_smoothing)->capture_default_str();
  cli->add_option("--clip-grad", c->clip_grad, "clip the gradient norm to this (0: off)")->capture_default_str();
  add_sfw_flags(*cli, *c);
  cli->add_option("--seed", c->data.seed)->capture_default_str();
  cli->add_option("--threads", c->threads,
                  "threads per rank (0: SHEARS_NUM_THREADS, or the cores shared among the ranks)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_flag("--distributed", c->distributed,
                "data-parallel over the ranks of mpirun: each trains on its shard, gradients averaged (--batch-size is per "
                "rank); with --split-data, one part per rank");
  cli->add_option("--split-data", c->split_data,
                  "train K models on K disjoint parts of the data, then combine them (naive, OT fusion, PaF, FaP)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_option("--split-sparsity", c->split_sparsity, "split-data: channel sparsity of PaF and FaP")->capture_default_str();
  cli->add_option("--split-finetune-epochs", c->split_finetune_epochs, "split-data: fine-tuning of each combined model")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli->add_option("--split-finetune-lr", c->split_finetune_lr, "split-data: its lr (cosine-decayed)")->capture_default_str();
  cli->add_option("--split-bn-batches", c->split_bn_batches,
                  "split-data: re-estimate each combination's BatchNorm statistics on N training batches (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli->add_option("--output,-o", c->output, "run folder")->required();
  cli->add_option("--resume", c->resume, "continue from a run's last.safetensors")->configurable(false);
  cli->add_option("--initial-checkpoint", c->initial_checkpoint,
                  "start from these weights (shears or PyTorch names; fresh optimizer and schedule; a classifier of "
                  "another class count is reinitialised)")
      ->check(CLI::ExistingFile);
  cli->add_option("--stop-after", c->stop_after, "run only this many epochs now (resume later with --resume)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->configurable(false);
  cli->add_flag("--overwrite", c->overwrite, "replace the run the --output folder holds (its checkpoints and logs)")
      ->configurable(false);
  cli->add_flag("--skip-nonfinite", c->skip_nonfinite,
                "skip steps whose loss or gradients hold NaN/Inf (counted in the log) instead of stopping");
  cli->add_option("--protocol", c->protocol, "shears, or official: SFW's official training setup (flags given win)")
      ->capture_default_str()
      ->check(CLI::IsMember({"shears", "official"}));
  cli->add_flag("--print-config", c->print_config, "print the settings in force (presets applied) and stop")
      ->configurable(false);
  return {cli, [c, cli] {
            if (!c->config.empty()) apply_config_file(*cli, c->config);
            if (c->protocol == "official") {
              SHEARS_CHECK(!cli->count("--opt") || c->opt == "sfw", "--protocol",
                           "official: shears train follows SFW's official code (--opt sfw); the other methods' "
                           "official protocols are shears prune's");
              apply_official_protocol(*cli, "sfw", prune::MethodKind::training, nullptr);
            }
            if (c->print_config) {
              std::printf("%s", cli->config_to_str(true, false).c_str());
              return 0;
            }
            return c->split_data > 0 ? run_split_data(*c, *cli) : run(*c, *cli);
          }};
}

}  // namespace shears::app
