// `shears train`: trains a model from the zoo on a dataset, with a run folder holding the resolved
// config, summary.csv (a row per epoch), events.jsonl, and last/best checkpoints (+ optimizer
// state for --resume). Epoch e's shuffling, augmentation and dropout depend only on (seed, e), so
// resuming from the end of an epoch reproduces the uninterrupted run.
#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/commands.hpp"
#include "apps/config_file.hpp"
#include "apps/session.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/random.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"
#include "prune/sfw.hpp"

namespace shears::app {

namespace {

namespace fs = std::filesystem;

struct TrainConfig {
  std::string model = "mlpnet";
  DataChoice data;
  int64_t batch_size = 128, epochs = 10;
  std::string opt = "sgd";
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = false, decay_all = false;
  std::string sched = "cosine";
  int64_t warmup_epochs = 0, decay_epochs = 30;
  std::vector<int64_t> decay_milestones;
  double decay_rate = 0.1, min_lr = 0.0, warmup_factor = 0.1, label_smoothing = 0.0, clip_grad = 0.0;
  // --opt sfw (ALGORITHMS.md §4): per-tensor K-sparse polytopes sized from the initial weights.
  std::string sfw_constraint = "k-sparse", sfw_tau_mode = "initialization", sfw_rescale = "gradient", sfw_scope = "all";
  int64_t sfw_k = 10, sfw_init_iters = 390;
  double sfw_k_frac = 0.05, sfw_tau = 15.0, sfw_unconstrained_lr = 0.1;
  bool sfw_init = false;
  int threads = 0;
  int64_t stop_after = 0;  // epochs to run in this invocation (0: to the end)
  std::string output, resume, config;
};

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted = true; }

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

// Optimizer state, the epoch just finished and the best accuracy so far, beside the weights.
void save_training_state(const fs::path& path, const optim::Optimizer& opt, int64_t epoch, double best_top1) {
  std::vector<safetensors::Entry> entries;
  for (const auto& [name, t] : opt.state_dict()) entries.push_back({name, t, safetensors::Dtype::F32});
  safetensors::save(path.string(), entries,
                    {{"optimizer", opt.name()}, {"epoch", std::to_string(epoch)}, {"best_top1", std::to_string(best_top1)}});
}

int run(TrainConfig c, CLI::App& cli) {
  if (c.threads > 0) set_num_threads(c.threads);
  SHEARS_CHECK(c.batch_size > 0 && c.epochs > 0, "train", "--batch-size and --epochs must be positive");
  SHEARS_CHECK(!c.output.empty(), "train", "--output DIR is required (the run folder)");
  fs::path dir(c.output);
  fs::create_directories(dir);
  {
    std::ofstream config(dir / "config.toml");
    config << cli.config_to_str(true, false);
  }

  OpenedData d = open_data(c.data);
  nn::ModelOptions mo;
  mo.in_channels = d.channels;
  mo.num_classes = d.num_classes;
  mo.input_size = d.input_size;
  Generator init_gen(c.data.seed);
  std::shared_ptr<nn::Module> model = nn::make_model(c.model, mo, init_gen);
  auto opt = make_optimizer(c, model->named_parameters());

  data::DataLoader train_loader(d.splits.train, d.train_transform,
                                {c.batch_size, true, true, c.data.seed, c.data.workers, 2});
  data::DataLoader test_loader(d.splits.test, d.test_transform, {256, false, false, c.data.seed, c.data.workers, 2});
  std::unique_ptr<data::DataLoader> val_loader;  // --val-fraction: held out from train, evaluated like test
  if (d.splits.val)
    val_loader = std::make_unique<data::DataLoader>(d.splits.val, d.test_transform,
                                                    data::LoaderOptions{256, false, false, c.data.seed, c.data.workers, 2});
  int64_t iters = train_loader.num_batches();
  SHEARS_CHECK(iters > 0, "train", "the training set (", d.splits.train->size(), " samples) is smaller than one batch of ",
               c.batch_size);
  optim::ScheduleOptions so{c.sched, c.epochs * iters, c.decay_epochs * iters, {}, c.decay_rate,
                            c.lr > 0 ? c.min_lr / c.lr : 0.0, c.warmup_epochs * iters, c.warmup_factor};
  for (int64_t m : c.decay_milestones) so.milestones.push_back(m * iters);
  auto schedule = optim::make_schedule(so);

  int64_t first_epoch = 0;
  double best_top1 = -1.0;
  if (!c.resume.empty()) {
    fs::path weights(c.resume), state = fs::path(c.resume).replace_extension(".optim.safetensors");
    model->load_checkpoint(weights.string());
    safetensors::File s = safetensors::load(state.string());
    optim::NamedTensors named;
    for (const auto& e : s.tensors) named.emplace_back(e.name, e.value);
    opt->load_state_dict(named);
    first_epoch = std::stoll(s.metadata.at("epoch")) + 1;
    best_top1 = std::stod(s.metadata.at("best_top1"));
    std::printf("resumed from %s at epoch %lld\n", weights.c_str(), (long long)first_epoch);
  }

  if (c.opt == "sfw" && c.sfw_init && first_epoch == 0) {  // SFW-Init (ALGORITHMS.md §4.6), on its own shuffle
    data::DataLoader init_loader(d.splits.train, d.train_transform, {c.batch_size, true, true, c.data.seed + 1, c.data.workers, 2});
    int64_t init_epoch = 0;
    init_loader.start_epoch(init_epoch);
    auto next_batch = [&] {
      auto b = init_loader.next();
      if (!b) init_loader.start_epoch(++init_epoch), b = init_loader.next();
      return std::move(*b);
    };
    auto r = prune::sfw_init(*model, dynamic_cast<prune::Sfw&>(*opt), next_batch, {.iters = c.sfw_init_iters});
    std::printf("sfw-init: %lld iterations (first-order approximation: no double backward), loss %.4f -> %.4f\n",
                (long long)r.iters, r.first_loss, r.last_loss);
  }
  std::printf("train %s on %s: %lld train / %lld test images, %lldx%lld, %lld classes, %lld parameters\n",
              c.model.c_str(), d.splits.name.c_str(), (long long)d.splits.train->size(), (long long)d.splits.test->size(),
              (long long)d.input_size, (long long)d.input_size, (long long)d.num_classes, (long long)model->num_parameters());
  fs::path summary = dir / "summary.csv", events = dir / "events.jsonl";
  if (first_epoch == 0) {
    std::ofstream(summary)
        << "epoch,train_loss,train_top1,val_loss,val_top1,test_loss,test_top1,test_top5,lr,seconds,images_per_second\n";
    std::ofstream(events).flush();
  }
  std::signal(SIGINT, on_interrupt);

  int64_t last_epoch = c.stop_after > 0 ? std::min(c.epochs, first_epoch + c.stop_after) : c.epochs;
  for (int64_t epoch = first_epoch; epoch < last_epoch; ++epoch) {
    default_generator().seed(c.data.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));  // dropout: f(seed, epoch)
    model->train();
    train_loader.start_epoch(epoch);
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs), iters);
    auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, step = 0;
    while (auto batch = train_loader.next()) {
      opt->scale_lr(schedule->factor(epoch * iters + step));
      Tensor logits = (*model)(batch->images);
      Tensor loss = cross_entropy(logits, batch->labels, static_cast<float>(c.label_smoothing));
      float value = loss.item();
      if (!std::isfinite(value))
        throw Error("train: the loss became " + std::to_string(value) + " at epoch " + std::to_string(epoch + 1) +
                    ", step " + std::to_string(step + 1) + "; the last good checkpoint is " + (dir / "last.safetensors").string() +
                    ". Hint: lower --lr (now " + std::to_string(c.lr) + ") or add --clip-grad");
      opt->zero_grad();
      loss.backward();
      if (c.clip_grad > 0) optim::clip_grad_norm(model->named_parameters(), c.clip_grad);
      opt->step();
      int64_t n = logits.size(0);
      loss_sum += value * n;
      correct += count_topk(logits, batch->labels, 1);
      seen += n;
      ++step;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char stats[128];
      std::snprintf(stats, sizeof stats, "loss %.4f acc %.2f%% %.0f img/s", loss_sum / seen, 100.0 * correct / seen, seen / secs);
      progress.update(step, stats);
      if (interrupted) {
        progress.finish();
        model->save_checkpoint((dir / "interrupted.safetensors").string());
        std::printf("interrupted at epoch %lld step %lld: weights saved to %s; --resume %s continues from the last "
                    "completed epoch\n",
                    (long long)epoch + 1, (long long)step, (dir / "interrupted.safetensors").c_str(),
                    (dir / "last.safetensors").c_str());
        return 130;
      }
    }
    progress.finish();
    double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EvalResult test = evaluate(*model, test_loader, d.num_classes);
    std::optional<EvalResult> val;
    if (val_loader) val = evaluate(*model, *val_loader, d.num_classes);
    double lr = opt->param_groups().front().lr;
    char val_text[64] = "", val_cells[64] = ",";
    if (val) {
      std::snprintf(val_text, sizeof val_text, "  val loss %.4f top-1 %.2f%%", val->loss, val->top1);
      std::snprintf(val_cells, sizeof val_cells, "%.6f,%.4f", val->loss, val->top1);
    }
    std::printf("epoch %lld/%lld  train loss %.4f top-1 %.2f%%%s  test loss %.4f top-1 %.2f%% top-5 %.2f%%  lr %.5f  %s (%.0f img/s)\n",
                (long long)epoch + 1, (long long)c.epochs, loss_sum / seen, 100.0 * correct / seen, val_text, test.loss,
                test.top1, test.top5, lr, format_duration(train_seconds).c_str(), seen / train_seconds);
    std::fflush(stdout);
    char row[320];
    std::snprintf(row, sizeof row, "%lld,%.6f,%.4f,%s,%.6f,%.4f,%.4f,%.8g,%.3f,%.1f", (long long)epoch + 1,
                  loss_sum / seen, 100.0 * correct / seen, val_cells, test.loss, test.top1, test.top5, lr, train_seconds,
                  seen / train_seconds);
    append_line(summary, row);
    nlohmann::json event = {{"event", "epoch"}, {"epoch", epoch + 1}, {"train_loss", loss_sum / seen},
                            {"train_top1", 100.0 * correct / seen}, {"test_loss", test.loss}, {"test_top1", test.top1},
                            {"test_top5", test.top5}, {"lr", lr}, {"seconds", train_seconds}};
    if (val) event["val_loss"] = val->loss, event["val_top1"] = val->top1;
    append_line(events, event.dump());
    std::map<std::string, std::string> meta{{"epoch", std::to_string(epoch + 1)}, {"test_top1", std::to_string(test.top1)}};
    model->save_checkpoint((dir / "last.safetensors").string(), meta);
    double selection = val ? val->top1 : test.top1;  // the best epoch is chosen on held-out data when there is some
    if (selection > best_top1) {
      best_top1 = selection;
      model->save_checkpoint((dir / "best.safetensors").string(), meta);
    }
    save_training_state(dir / "last.optim.safetensors", *opt, epoch, best_top1);
  }
  std::signal(SIGINT, SIG_DFL);
  if (last_epoch < c.epochs) {
    std::printf("stopped after epoch %lld of %lld; continue with --resume %s\n", (long long)last_epoch,
                (long long)c.epochs, (dir / "last.safetensors").c_str());
    return 0;
  }
  std::printf("done: best %s top-1 %.2f%%; run folder %s (summary.csv, events.jsonl, last/best.safetensors)\n",
              val_loader ? "val" : "test", best_top1, dir.c_str());
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("train", "Train a model from the zoo");
  auto c = std::make_shared<TrainConfig>();
  cli->add_option("--config", c->config, "a TOML/INI file whose keys are these flags")->check(CLI::ExistingFile);
  cli->add_option("--model", c->model, "architecture (see `shears info --models`)")->capture_default_str();
  add_data_flags(*cli, c->data);
  cli->add_option("--batch-size,-b", c->batch_size)->capture_default_str();
  cli->add_option("--epochs", c->epochs)->capture_default_str();
  cli->add_option("--opt", c->opt, "sgd, adam, adamw or sfw (Frank-Wolfe; use --lr 1, no weight decay)")->capture_default_str();
  cli->add_option("--lr", c->lr)->capture_default_str();
  cli->add_option("--momentum", c->momentum)->capture_default_str();
  cli->add_flag("--nesterov", c->nesterov);
  cli->add_option("--weight-decay,--wd", c->weight_decay)->capture_default_str();
  cli->add_flag("--decay-all", c->decay_all, "weight decay on biases and normalisation too");
  cli->add_option("--sched", c->sched, "constant, step, multistep, cosine or onecycle (per iteration)")->capture_default_str();
  cli->add_option("--warmup-epochs", c->warmup_epochs)->capture_default_str();
  cli->add_option("--warmup-factor", c->warmup_factor, "warm-up starts at this fraction of --lr")->capture_default_str();
  cli->add_option("--decay-epochs", c->decay_epochs, "step: epochs between decays")->capture_default_str();
  cli->add_option("--decay-milestones", c->decay_milestones, "multistep: epochs at which to decay");
  cli->add_option("--decay-rate", c->decay_rate, "step/multistep: factor per decay")->capture_default_str();
  cli->add_option("--min-lr", c->min_lr, "cosine: the final lr")->capture_default_str();
  cli->add_option("--label-smoothing", c->label_smoothing)->capture_default_str();
  cli->add_option("--clip-grad", c->clip_grad, "clip the gradient norm to this (0: off)")->capture_default_str();
  cli->add_option("--sfw-k-frac", c->sfw_k_frac, "sfw: K per tensor as a fraction (density) of its entries")->capture_default_str();
  cli->add_option("--sfw-k", c->sfw_k, "sfw: minimum K per tensor (K = min(max(k, floor(frac*n)), n))")->capture_default_str();
  cli->add_option("--sfw-tau", c->sfw_tau, "sfw: tau (initialization: D = 2*tau*|theta_init|; radius; diameter)")->capture_default_str();
  cli->add_option("--sfw-tau-mode", c->sfw_tau_mode, "sfw: initialization, radius or diameter")->capture_default_str();
  cli->add_option("--sfw-constraint", c->sfw_constraint, "sfw: k-sparse, l1, l2 or linf")->capture_default_str();
  cli->add_option("--sfw-scope", c->sfw_scope, "sfw: constrain all parameters (reference) or conv-linear weights")->capture_default_str();
  cli->add_option("--sfw-rescale", c->sfw_rescale, "sfw: lr rescaling gradient, diameter or none")->capture_default_str();
  cli->add_option("--sfw-unconstrained-lr", c->sfw_unconstrained_lr, "sfw: SGD lr of unconstrained tensors")->capture_default_str();
  cli->add_flag("--sfw-init", c->sfw_init, "sfw: learn the initial per-tensor scales first (SFW-Init)");
  cli->add_option("--sfw-init-iters", c->sfw_init_iters, "sfw: SFW-Init iterations")->capture_default_str();
  cli->add_option("--seed", c->data.seed)->capture_default_str();
  cli->add_option("--threads", c->threads, "threads (0: SHEARS_NUM_THREADS or all cores)");
  cli->add_option("--output,-o", c->output, "run folder")->required();
  cli->add_option("--resume", c->resume, "continue from a run's last.safetensors");
  cli->add_option("--stop-after", c->stop_after, "run only this many epochs now (resume later with --resume)");
  return {cli, [c, cli] {
            if (!c->config.empty()) apply_config_file(*cli, c->config);
            return run(*c, *cli);
          }};
}

}  // namespace shears::app
