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
#include "apps/prune.hpp"
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
#include "prune/model_fusion.hpp"
#include "prune/sfw.hpp"
#include "train/loop.hpp"
#include "train/run_folder.hpp"
#include "train/state.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

struct TrainConfig {
  std::string model = "mlpnet";
  std::vector<int64_t> widths;  // explicit layer widths (each model's header lists which layers)
  float width_multiplier = 1.f;
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
  int64_t stop_after = 0;  // epochs to run in this invocation (0: to the end)
  bool skip_nonfinite = false;  // skip steps whose loss or gradients hold NaN/Inf instead of stopping
  bool overwrite = false;       // replace the run the output folder holds
  std::string output, resume, config;
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

// --opt sfw: the constraints are sized from `params` as given, so this must see the freshly
// initialised model (a resumed run rebuilds it from the same seed); tensors are made feasible.
std::unique_ptr<optim::Optimizer> make_sfw(const TrainConfig& c, const optim::NamedTensors& params) {
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
  prune::SfwOptions so;
  so.lr = c.lr;
  so.momentum = c.momentum;
  so.rescale = sfw_choice<prune::Rescale>("--sfw-rescale", c.sfw_rescale,
                                          {{"gradient", prune::Rescale::gradient}, {"diameter", prune::Rescale::diameter},
                                           {"none", prune::Rescale::none}});
  so.unconstrained_lr = c.sfw_unconstrained_lr;
  auto opt = std::make_unique<prune::Sfw>(params, prune::make_constraints(params, co), so);
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

void append_line(const fs::path& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << '\n';
  SHEARS_CHECK(out.good(), path.string(), "cannot append to the run log");
}

// Flags that may change when a run resumes: where it runs and how fast, not what it computes.
// (--config, --resume, --stop-after and --overwrite are not recorded at all: not configurable.)
const std::set<std::string> kResumeMayChange{"output", "threads", "workers", "skip-nonfinite"};

// A run killed after logging epoch k + 1 but before saving its training state resumes at epoch
// k + 1 and logs it again: keeps the header and the rows (summary.csv) or events (events.jsonl)
// of the first `epochs` epochs only.
void keep_logged_epochs(const fs::path& path, int64_t epochs) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);  // a CSV row is not JSON ...
    const int64_t epoch = event.is_object() && event.contains("epoch") && event["epoch"].is_number_integer()
                              ? event["epoch"].get<int64_t>()
                              : std::atoll(line.c_str());  // ... but starts with its epoch (the header: 0)
    if (epoch <= epochs) kept += line + '\n';
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

// A closed stdout or stderr (`shears train … | head`) never ends a run (SIGPIPE is ignored, see
// apps/main.cpp): the first failed write is noted in events.jsonl, once, and the run goes on.
void note_output_error(const fs::path& events, int64_t epoch, bool root) {
  static bool noted = false;
  if (noted || !root || !(std::ferror(stdout) || std::ferror(stderr))) return;
  noted = true;
  append_line(events, nlohmann::json{{"event", "output_error"},
                                     {"epoch", epoch},
                                     {"message",
                                      "standard output or error could not be written (closed pipe or full "
                                      "disk); the run goes on, its figures are in summary.csv and here"}}
                          .dump());
}

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
  SHEARS_CHECK(c.batch_size > 0 && c.epochs > 0, "train", "--batch-size and --epochs must be positive");
  SHEARS_CHECK(!c.output.empty(), "train", "--output DIR is required (the run folder)");
  SHEARS_CHECK(!(c.distributed && c.sfw_init), "train", "--sfw-init runs its own training loop, which is not distributed");
  SHEARS_CHECK(!(c.overwrite && !c.resume.empty()), "train", "--overwrite replaces the run in the folder and --resume ",
               "continues it: give one of them");
  fs::path dir(c.output);
  const std::string config = cli.config_to_str(true, false);

  OpenedData d = open_data(c.data);
  if (c.split_part >= 0) {  // --split-data: part k of a split fixed by the seed, and an initialisation of its own
    const int64_t n = d.splits.train->size(), parts = c.split_data;
    std::vector<int64_t> lengths;
    for (int64_t k = 0; k < parts; ++k) lengths.push_back(n / parts + (k < n % parts));
    d.splits.train = data::random_split(d.splits.train, lengths, c.data.seed)[c.split_part];
  }
  nn::ModelOptions mo;
  mo.in_channels = d.channels;
  mo.num_classes = d.num_classes;
  mo.input_size = d.input_size;
  mo.widths = c.widths;
  mo.width_multiplier = c.width_multiplier;
  Generator init_gen(c.data.seed + static_cast<uint64_t>(std::max<int64_t>(0, c.split_part)));
  std::shared_ptr<nn::Module> model = nn::make_model(c.model, mo, init_gen);
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
  SHEARS_CHECK(iters > 0, "train", "the training set (", d.splits.train->size(), " samples) is smaller than one batch of ",
               c.batch_size, (shards > 1 ? " per rank" : ""));
  optim::ScheduleOptions so{c.sched, c.epochs * iters, c.decay_epochs * iters, {}, c.decay_rate,
                            c.lr > 0 ? c.min_lr / c.lr : 0.0, c.warmup_epochs * iters, c.warmup_factor};
  for (int64_t m : c.decay_milestones) so.milestones.push_back(m * iters);
  const std::optional<prune::LrScheme> scheme = epoch_scheme(c.sched);
  if (scheme) so.name = "constant";  // the scheme sets the factor once per epoch, below
  auto schedule = optim::make_schedule(so);

  int64_t first_epoch = 0;
  double best_top1 = -1.0;
  std::vector<double> epoch_losses;  // mean training loss of every finished epoch
  const fs::path state = fs::path(c.resume).replace_extension(".optim.safetensors");
  if (!c.resume.empty()) {
    train::TrainingProgress progress = train::load_training_state(state, *model, *opt, config, kResumeMayChange);
    first_epoch = progress.epochs_done, best_top1 = progress.best_top1, epoch_losses = progress.epoch_losses;
    SHEARS_CHECK(!scheme || static_cast<int64_t>(epoch_losses.size()) == first_epoch, state.string(), "holds the losses of ",
                 epoch_losses.size(), " epochs, not ", first_epoch, ": the lr scheme '", c.sched,
                 "' needs them (written by an older shears? start the run again)");
  }
  // The folder is made (and locked) only now that the flags, the data, the model and any state to
  // resume from are known good: a run refused before its first epoch leaves no folder behind.
  std::optional<train::RunFolder> folder;
  if (root) {
    folder.emplace(dir, train::RunFolderOptions{.resume_from = c.resume, .overwrite = c.overwrite});
    for (const std::string& tmp : safetensors::remove_temp_files(dir.string()))
      std::printf("removed %s, left by a run killed while saving\n", tmp.c_str());
    std::ofstream(dir / "config.toml") << config;
  }
  if (!c.resume.empty()) {
    if (root)
      for (const fs::path& log : {dir / "summary.csv", dir / "events.jsonl"}) keep_logged_epochs(log, first_epoch);
    std::printf("resumed from %s (weights and optimizer state) after epoch %lld\n", state.c_str(),
                (long long)first_epoch);
  }

  // SFW-Init (docs/algorithms/sfw.md#sfw-init), on its own shuffle.
  if (c.opt == "sfw" && c.sfw_init && first_epoch == 0) {
    data::DataLoader init_loader(d.splits.train, d.train_transform, {c.batch_size, true, true, c.data.seed + 1, c.data.workers, 2});
    auto r = prune::sfw_init(*model, dynamic_cast<prune::Sfw&>(*opt), data::endless_batches(init_loader, "--sfw-init"),
                             {.iters = c.sfw_init_iters});
    std::printf("sfw-init: %lld iterations (first-order approximation: no double backward), loss %.4f -> %.4f\n",
                (long long)r.iters, r.first_loss, r.last_loss);
  }
  std::printf("train %s on %s: %lld train / %lld test images, %lldx%lld, %lld classes, %lld parameters\n",
              c.model.c_str(), d.splits.name.c_str(), (long long)d.splits.train->size(), (long long)d.splits.test->size(),
              (long long)d.input_size, (long long)d.input_size, (long long)d.num_classes, (long long)model->num_parameters());
  if (shards > 1)
    std::printf("distributed: %lld ranks x batch %lld (global batch %lld), %d threads per rank\n", (long long)shards,
                (long long)c.batch_size, (long long)(shards * c.batch_size), num_threads());
  fs::path summary = dir / "summary.csv", events = dir / "events.jsonl";
  if (first_epoch == 0 && root) {
    std::ofstream(summary)
        << "epoch,train_loss,train_top1,val_loss,val_top1,test_loss,test_top1,test_top5,lr,seconds,images_per_second\n";
    std::ofstream(events).flush();
  }
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
    if (s.stopped) {
      if (root) model->save_checkpoint((dir / "interrupted.safetensors").string());
      const int sig = interrupt_signal ? interrupt_signal.load() : SIGINT;  // (another rank's signal)
      std::printf(
          "interrupted (%s) at epoch %lld step %lld: weights saved to %s; --resume %s continues from the last "
          "completed epoch\n",
          sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)epoch + 1, (long long)s.steps,
          (dir / "interrupted.safetensors").c_str(), (dir / "last.safetensors").c_str());
      return 128 + sig;
    }
    double loss_sum = s.loss_sum, train_seconds = s.seconds;
    int64_t seen = s.seen, correct = s.correct, step = s.steps, skipped = s.skipped;
    // The ranks' figures become global; BN running statistics become rank 0's (DDP's broadcast_buffers).
    std::vector<double> totals{loss_sum, static_cast<double>(correct), static_cast<double>(seen)};
    comm.sum(totals);
    loss_sum = totals[0], correct = static_cast<int64_t>(totals[1]), seen = static_cast<int64_t>(totals[2]);
    epoch_losses.push_back(loss_sum / seen);
    comm.broadcast(buffers);
    EvalResult test = combine(comm, evaluate(*model, test_loader, d.num_classes));
    std::optional<EvalResult> val;
    if (val_loader) val = combine(comm, evaluate(*model, *val_loader, d.num_classes));
    double lr = opt->param_groups().front().lr;
    char val_text[64] = "", val_cells[64] = ",";
    if (val) {
      std::snprintf(val_text, sizeof val_text, "  val loss %.4f top-1 %.2f%%", val->loss, val->top1);
      std::snprintf(val_cells, sizeof val_cells, "%.6f,%.4f", val->loss, val->top1);
    }
    std::printf("epoch %lld/%lld  train loss %.4f top-1 %.2f%%%s  test loss %.4f top-1 %.2f%% top-5 %.2f%%  lr %.5f  %s (%.0f img/s)\n",
                (long long)epoch + 1, (long long)c.epochs, loss_sum / seen, 100.0 * correct / seen, val_text, test.loss,
                test.top1, test.top5, lr, format_duration(train_seconds).c_str(), seen / train_seconds);
    if (skipped)
      std::printf("  skipped %lld of %lld steps (non-finite loss or gradients)\n", (long long)skipped, (long long)step);
    double allreduce_ms = 0;
    if (shards > 1) {
      std::vector<Tensor> state = params;
      state.insert(state.end(), buffers.begin(), buffers.end());
      uint64_t checksum = comm.verify_identical(state);
      const dist::SyncStats& s = comm.sync_stats();
      allreduce_ms = 1e3 * s.seconds / std::max<int64_t>(1, s.calls);
      std::printf("  all-reduce %.2f ms/step (%.1f%% of training time; waiting for the slowest rank included), "
                  "%.2f MiB in %.0f bucket(s) per step; weights identical on %lld ranks (checksum %016llx)\n",
                  allreduce_ms, 100 * s.seconds / train_seconds, s.bytes / 1048576.0 / std::max<int64_t>(1, s.calls),
                  double(s.buckets) / std::max<int64_t>(1, s.calls), (long long)shards, (unsigned long long)checksum);
      comm.reset_sync_stats();
    }
    std::fflush(stdout);
    note_output_error(events, epoch + 1, root);
    char row[320];
    std::snprintf(row, sizeof row, "%lld,%.6f,%.4f,%s,%.6f,%.4f,%.4f,%.8g,%.3f,%.1f", (long long)epoch + 1,
                  loss_sum / seen, 100.0 * correct / seen, val_cells, test.loss, test.top1, test.top5, lr, train_seconds,
                  seen / train_seconds);
    if (root) append_line(summary, row);
    nlohmann::json event = {{"event", "epoch"}, {"epoch", epoch + 1}, {"train_loss", loss_sum / seen},
                            {"train_top1", 100.0 * correct / seen}, {"test_loss", test.loss}, {"test_top1", test.top1},
                            {"test_top5", test.top5}, {"lr", lr}, {"seconds", train_seconds}};
    if (val) event["val_loss"] = val->loss, event["val_top1"] = val->top1;
    if (skipped) event["skipped_steps"] = skipped;
    if (shards > 1) event["ranks"] = shards, event["allreduce_ms_per_step"] = allreduce_ms;
    if (root) append_line(events, event.dump());
    std::map<std::string, std::string> meta{{"epoch", std::to_string(epoch + 1)}, {"test_top1", std::to_string(test.top1)}};
    if (root) model->save_checkpoint((dir / "last.safetensors").string(), meta);
    // The best epoch is chosen on held-out data when there is some, and never from an evaluation
    // whose loss is not finite (a diverged model).
    const EvalResult& chosen_on = val ? *val : test;
    if (chosen_on.nonfinite > 0)
      std::printf("  %lld %s images have non-finite logits (counted wrong)\n", (long long)chosen_on.nonfinite,
                  val ? "val" : "test");
    if (std::isfinite(chosen_on.loss) && chosen_on.top1 > best_top1) {
      best_top1 = chosen_on.top1;
      if (root) model->save_checkpoint((dir / "best.safetensors").string(), meta);
    }
    if (root)
      train::save_training_state(dir / "last.optim.safetensors", *model, *opt, epoch, best_top1, epoch_losses, config);
  }
  if (last_epoch < c.epochs) {
    std::printf("stopped after epoch %lld of %lld; continue with --resume %s\n", (long long)last_epoch,
                (long long)c.epochs, (dir / "last.safetensors").c_str());
    return 0;
  }
  if (best_top1 < 0)
    std::printf("done: no epoch had a finite %s loss, so there is no best.safetensors; run folder %s\n",
                val_loader ? "val" : "test", dir.c_str());
  else
    std::printf("done: best %s top-1 %.2f%%; run folder %s (summary.csv, events.jsonl, last/best.safetensors)\n",
                val_loader ? "val" : "test", best_top1, dir.c_str());
  return 0;
}

// --split-data K (issue 12; docs/algorithms/intra-fusion.md#split-data-paf-and-fap: the authors did
// not publish their procedure; this one is ours). K models, model k on part k of a random split of
// the training set (fixed by --seed) and initialised from seed + k, are trained with no
// communication: one per rank under mpirun with --distributed (each rank writes its part's run
// folder), else one after another. Rank 0 then combines their last weights (each rank sends its
// own, so no shared disk is needed) four ways, each evaluated on the test set as is and after
// --split-finetune-epochs of fine-tuning on the whole training set:
//   naive  the plain average of the K models (no alignment), the baseline;
//   ot     OT fusion: models 1..K-1 aligned to model 0, then averaged (prune/model_fusion.hpp);
//   paf    prune, then fuse: each model pruned by Intra-Fusion (l1 importance, the same channel
//          sparsity in every group, so the pruned models share widths), then OT-fused;
//   fap    fuse, then prune: the OT-fused model pruned by Intra-Fusion the same way;
// and each part alone. Writes DIR/part-k/ (each model's run folder), DIR/<name>.safetensors and
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
  const Shape input{1, d.channels, d.input_size, d.input_size};
  PruneSpec spec;
  spec.structured = true;
  spec.method = "intrafusion";
  spec.importance = "l1";
  spec.distribution = "per-layer";
  spec.sparsity = c.split_sparsity;
  spec.seed = c.data.seed;
  auto pruned = [&](const std::shared_ptr<nn::Module>& m) {
    std::shared_ptr<nn::Module> p = m->clone();
    prune_model(*p, spec, d);
    return p;
  };
  struct Combined {
    std::string name;
    std::shared_ptr<nn::Module> model;
    double seconds;  // combining (fusion, pruning), not training
  };
  std::vector<Combined> combined;
  auto timed = [&](const std::string& name, const std::function<std::shared_ptr<nn::Module>()>& make) {
    auto start = std::chrono::steady_clock::now();
    std::shared_ptr<nn::Module> m = make();
    combined.push_back({name, m, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  };
  timed("naive", [&] { return prune::fuse_models(models, input, {.align = false}); });
  timed("ot", [&] { return prune::fuse_models(models, input); });
  timed("paf", [&] {
    std::vector<std::shared_ptr<nn::Module>> each;
    for (const auto& m : models) each.push_back(pruned(m));
    return prune::fuse_models(each, input);
  });
  timed("fap", [&] { return pruned(prune::fuse_models(models, input)); });

  data::DataLoader test_loader(d.splits.test, d.test_transform, {256, false, false, c.data.seed, c.data.workers, 2});
  FineTune ft{c.split_finetune_epochs, c.split_finetune_lr, c.momentum, c.weight_decay, c.batch_size};
  struct Row {
    std::string name;
    int64_t parameters;
    EvalResult before;
    std::optional<EvalResult> after;         // fine-tuned
    std::optional<double> combine_seconds;  // fusion and pruning (the parts have none)
    double finetune_seconds = 0, train_seconds = 0;
  };
  std::vector<Row> rows;
  for (int64_t k = 0; k < parts; ++k)
    rows.push_back({"part-" + std::to_string(k), models[k]->num_parameters(), evaluate(*models[k], test_loader, d.num_classes),
                    {}, {}, 0, seconds[k]});
  for (Combined& m : combined) {
    Row row{m.name, m.model->num_parameters(), evaluate(*m.model, test_loader, d.num_classes), {}, m.seconds};
    if (ft.epochs > 0) {
      std::printf("fine-tuning %s\n", m.name.c_str());
      auto start = std::chrono::steady_clock::now();
      fine_tune(*m.model, ft, d, c.data.seed);
      row.finetune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      row.after = evaluate(*m.model, test_loader, d.num_classes);
    }
    m.model->save_checkpoint((dir / (m.name + ".safetensors")).string(),
                             {{"split_data", std::to_string(parts)}, {"combination", m.name},
                              {"test_top1", std::to_string((row.after ? *row.after : row.before).top1)}});
    rows.push_back(std::move(row));
  }

  const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
  std::printf("\nsplit-data: %lld parts trained in %.1f s each on average (%.1f s in all, %s)\n", (long long)parts,
              total / static_cast<double>(parts), total, world.size() > 1 ? "in parallel, one per rank" : "one after another");
  std::printf("%-8s %12s %11s %9s %17s\n", "model", "parameters", "test top-1", "combine", "fine-tuned top-1");
  std::ofstream csv(dir / "split_data.csv");
  csv << "model,parameters,test_loss,test_top1,finetuned_test_loss,finetuned_test_top1,train_seconds,combine_seconds,"
         "finetune_seconds\n";
  for (const Row& r : rows) {
    std::printf("%-8s %12lld %10.2f%%", r.name.c_str(), (long long)r.parameters, r.before.top1);
    if (r.combine_seconds) std::printf(" %8.2fs", *r.combine_seconds);
    if (r.after) std::printf(" %16.2f%%", r.after->top1);
    std::printf("\n");
    csv << r.name << ',' << r.parameters << ',' << r.before.loss << ',' << r.before.top1 << ',';
    if (r.after) csv << r.after->loss << ',' << r.after->top1;
    else csv << ',';
    csv << ',' << r.train_seconds << ',' << r.combine_seconds.value_or(0) << ',' << r.finetune_seconds << '\n';
  }
  std::printf("run folder %s: part-*/ (each model's run), naive/ot/paf/fap.safetensors, split_data.csv\n", dir.c_str());
  return 0;
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
  cli->add_option("--widths", c->widths, "comma-separated layer widths, e.g. vgg11_bn's 8 convs (see nn/models/)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cli->add_option("--width-multiplier", c->width_multiplier, "mobilenet_v1")->capture_default_str();
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
  cli->add_option("--sfw-k-frac", c->sfw_k_frac, "sfw: K per tensor as a fraction (density) of its entries")->capture_default_str();
  cli->add_option("--sfw-k", c->sfw_k, "sfw: minimum K per tensor (K = min(max(k, floor(frac*n)), n))")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli->add_option("--sfw-tau", c->sfw_tau, "sfw: tau (initialization: D = 2*tau*|theta_init|; radius; diameter)")->capture_default_str();
  cli->add_option("--sfw-tau-mode", c->sfw_tau_mode, "sfw: initialization, radius or diameter")->capture_default_str();
  cli->add_option("--sfw-constraint", c->sfw_constraint, "sfw: k-sparse, l1, l2 or linf")->capture_default_str();
  cli->add_option("--sfw-scope", c->sfw_scope, "sfw: constrain all parameters (reference) or conv-linear weights")->capture_default_str();
  cli->add_option("--sfw-rescale", c->sfw_rescale, "sfw: lr rescaling gradient, diameter or none")->capture_default_str();
  cli->add_option("--sfw-unconstrained-lr", c->sfw_unconstrained_lr, "sfw: SGD lr of unconstrained tensors")->capture_default_str();
  cli->add_flag("--sfw-init", c->sfw_init, "sfw: learn the initial per-tensor scales first (SFW-Init)");
  cli->add_option("--sfw-init-iters", c->sfw_init_iters, "sfw: SFW-Init iterations")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
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
  cli->add_option("--output,-o", c->output, "run folder")->required();
  cli->add_option("--resume", c->resume, "continue from a run's last.safetensors")->configurable(false);
  cli->add_option("--stop-after", c->stop_after, "run only this many epochs now (resume later with --resume)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->configurable(false);
  cli->add_flag("--overwrite", c->overwrite, "replace the run the --output folder holds (its checkpoints and logs)")
      ->configurable(false);
  cli->add_flag("--skip-nonfinite", c->skip_nonfinite,
                "skip steps whose loss or gradients hold NaN/Inf (counted in the log) instead of stopping");
  return {cli, [c, cli] {
            if (!c->config.empty()) apply_config_file(*cli, c->config);
            return c->split_data > 0 ? run_split_data(*c, *cli) : run(*c, *cli);
          }};
}

}  // namespace shears::app
