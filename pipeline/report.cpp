// `shears report`: the plan of steps, running it, and report.md from the CSVs (pipeline/report.hpp).
// --quick is a smoke-scale plan (a minute or two on 2 cores, one seed); --full is the plan the
// claims deserve (hours; 3 seeds by default).
#include "pipeline/report.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.hpp"
#include "core/machine.hpp"
#include "core/version.hpp"
#include "pipeline/plot.hpp"
#include "pipeline/sweep.hpp"
#include "pipeline/sweep_table.hpp"

namespace shears::pipeline {
namespace {

namespace fs = std::filesystem;

std::string fmt(const char* format, auto... values) {
  char text[512];
  std::snprintf(text, sizeof text, format, values...);
  return text;
}

// One child run of this binary.
struct Step {
  std::string title;
  std::vector<std::string> args;  // after "shears"
  std::function<bool()> done;     // already finished (skipped)
  double cost = 1;                // relative duration, for the time estimate
  std::string log;
};

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

int64_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// The last lines of a log, for an error message.
std::string tail(const fs::path& file, size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line.substr(line.rfind('\r') + 1));
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += "  " + all[i] + "\n";
  return out;
}

// Runs `executable args…` (argv[0] "shears") with its output in `log`; returns its exit status.
int run_child(const std::string& executable, const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv_strings{"shears"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = fork();
  SHEARS_CHECK(pid >= 0, "report", "cannot start a child process: ", std::strerror(errno));
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execv(executable.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- The plan

struct Plan {
  const ReportOptions& c;
  fs::path dir;
  std::vector<uint64_t> seeds;
  std::vector<Step> steps;

  std::vector<std::string> data_flags(int64_t input_size = 0) const {
    std::vector<std::string> f{"--data", c.data};
    if (!c.data_dir.empty()) f.insert(f.end(), {"--data-dir", c.data_dir});
    if (c.limit_train > 0) f.insert(f.end(), {"--limit-train", std::to_string(c.limit_train)});
    if (c.limit_test > 0) f.insert(f.end(), {"--limit-test", std::to_string(c.limit_test)});
    if (input_size > 0) f.insert(f.end(), {"--input-size", std::to_string(input_size)});
    if (c.threads > 0) f.insert(f.end(), {"--threads", std::to_string(c.threads)});
    return f;
  }

  fs::path model_dir(const std::string& name, uint64_t seed) const {
    return dir / "models" / (name + "-seed" + std::to_string(seed));
  }

  void train(const std::string& name, uint64_t seed, int64_t epochs, std::vector<std::string> flags,
             int64_t input_size, double cost_per_epoch) {
    fs::path out = model_dir(name, seed);
    std::vector<std::string> args{"train", "--epochs", std::to_string(epochs), "--seed", std::to_string(seed),
                                  "--output", out.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    for (const std::string& f : data_flags(input_size)) args.push_back(f);
    steps.push_back({"train " + name + " (seed " + std::to_string(seed) + ", " + std::to_string(epochs) + " epochs)",
                     args, [out, epochs] { return count_lines(out / "summary.csv") == epochs + 1; },
                     cost_per_epoch * static_cast<double>(epochs), out.filename().string() + ".log"});
  }

  // A sweep over the seed's dense model; `cells` = methods × sparsities.
  void sweep(const std::string& claim, const std::string& model, uint64_t seed, const std::vector<std::string>& methods,
             const std::vector<double>& sparsities, std::vector<std::string> flags, int64_t input_size,
             double cost_per_cell) {
    const bool structured = std::find(flags.begin(), flags.end(), "--structured") != flags.end();
    for (const std::string& m : methods) pipeline::sweep_method(m, structured);  // a study names registry rows
    fs::path out = dir / claim / ("seed" + std::to_string(seed));
    std::vector<std::string> sparsity_text;
    for (double s : sparsities) sparsity_text.push_back(std::to_string(s));
    std::vector<std::string> args{"sweep", "--weights", (model_dir(model, seed) / "best.safetensors").string(),
                                  "--methods", join(methods, ","), "--sparsities", join(sparsity_text, ","),
                                  "--seed", std::to_string(seed), "--output", out.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    for (const std::string& f : data_flags(input_size)) args.push_back(f);
    const int64_t cells = static_cast<int64_t>(methods.size() * sparsities.size());
    steps.push_back({"sweep " + claim + " (seed " + std::to_string(seed) + ", " + std::to_string(cells) + " cells)", args,
                     [out, cells] { return count_lines(out / "sweep.csv") == cells + 1; },
                     cost_per_cell * static_cast<double>(cells), claim + "-seed" + std::to_string(seed) + ".log"});
  }

  void prune(const std::string& name, const std::string& model, uint64_t seed, std::vector<std::string> flags) {
    fs::path out = dir / "compare" / name;
    std::vector<std::string> args{"prune", "--weights", (model_dir(model, seed) / "best.safetensors").string(),
                                  "--output", out.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    for (const std::string& f : data_flags()) args.push_back(f);
    steps.push_back({"prune " + name, args, [out] { return fs::exists(out / "metrics.json"); }, 2,
                     "compare-" + name + ".log"});
  }
};

void say(const Plan& plan, const std::string& line) {
  if (plan.c.log) plan.c.log(line);
}

// Settings of the two plans. Sparsities span the ranges of the "What we expect on Fashion-MNIST"
// section of each page under docs/algorithms/.
struct Scale {
  int64_t mlp_epochs, vgg_epochs, vgg_train_images, swap_samples, spode_steps;  // vgg_train_images 0: all
  std::vector<double> swap_sparsities, spode_sparsities, sfw_sparsities, fusion_sparsities;
};

Scale scale_of(bool full) {
  if (full) return {10, 4, 0, 1000, 100, {0.5, 0.7, 0.9, 0.95, 0.98}, {0.9, 0.95, 0.98, 0.99}, {0.5, 0.7, 0.9, 0.95, 0.98},
                    {0.3, 0.5, 0.7}};
  return {3, 1, 15000, 200, 50, {0.5, 0.9, 0.95}, {0.9, 0.98}, {0.5, 0.9, 0.95}, {0.3, 0.5, 0.7}};
}

const std::vector<std::string> kVgg = {"--model", "vgg11_bn", "--widths", "16,32,64,64,64,64,64,64", "--lr", "0.05"};
const std::vector<std::string> kMlp = {"--model", "mlp", "--widths", "128,128"};
const std::vector<std::string> kSfw = {"--opt", "sfw", "--lr", "1", "--momentum", "0.9", "--weight-decay", "0",
                                       "--sched", "decrease_3"};
const std::vector<std::string> kSwapMethods = {"magnitude", "woodfisher", "lr", "swap"};
// LR as the ridge re-solve on magnitude's support and SWAP as one entropic re-solve on top of it at
// ε = mean(M): the pair that isolates what the plan does (README, SWAP study); alternating plan
// and weights drifts away from LR's pairing.
const std::vector<std::string> kSwapSolver = {"--inner-iters", "0", "--eps", "1", "--eps-relative"};
const std::vector<std::string> kSpodeMethods = {"magnitude", "snip", "synflow", "grasp", "spode"};
const std::vector<std::string> kFusionMethods = {"l1", "intrafusion:l1", "taylor", "intrafusion:taylor"};

Plan make_plan(const ReportOptions& c) {
  Plan plan{c, fs::path(c.output), {}, {}};
  for (int64_t s = 0; s < c.seeds; ++s) plan.seeds.push_back(static_cast<uint64_t>(s));
  const Scale k = scale_of(c.full);
  for (uint64_t seed : plan.seeds) {
    plan.train("mlpnet", seed, k.mlp_epochs, {"--model", "mlpnet"}, 0, 1);
    std::vector<std::string> mlp_sfw = kMlp;
    mlp_sfw.insert(mlp_sfw.end(), kSfw.begin(), kSfw.end());
    plan.train("mlp-sgd", seed, k.mlp_epochs, kMlp, 0, 1);
    plan.train("mlp-sfw", seed, k.mlp_epochs, mlp_sfw, 0, 1.5);
    std::vector<std::string> vgg = kVgg;  // the quick plan trains it on part of the images
    if (k.vgg_train_images > 0 && c.limit_train == 0)
      vgg.insert(vgg.end(), {"--limit-train", std::to_string(k.vgg_train_images)});
    plan.train("vgg11_bn-small", seed, k.vgg_epochs, vgg, 32, 40);
  }
  std::vector<std::string> swap_flags{"--samples", std::to_string(k.swap_samples)};
  swap_flags.insert(swap_flags.end(), kSwapSolver.begin(), kSwapSolver.end());
  std::vector<std::string> noisy_swap_flags = swap_flags;
  noisy_swap_flags.insert(noisy_swap_flags.end(), {"--grad-noise", "2", "--grad-noise-prop", "0.5"});
  for (uint64_t seed : plan.seeds) {
    plan.sweep("swap", "mlpnet", seed, kSwapMethods, k.swap_sparsities, swap_flags, 0, 3);
    plan.sweep("swap-noise", "mlpnet", seed, kSwapMethods, k.swap_sparsities, noisy_swap_flags, 0, 3);
    plan.sweep("spode", "mlpnet", seed, kSpodeMethods, k.spode_sparsities,
               {"--spode-steps", std::to_string(k.spode_steps)}, 0, 4);
    plan.sweep("sfw-sgd", "mlp-sgd", seed, {"magnitude"}, k.sfw_sparsities, {}, 0, 1);
    plan.sweep("sfw", "mlp-sfw", seed, {"magnitude"}, k.sfw_sparsities, {}, 0, 1);
    plan.sweep("intrafusion", "vgg11_bn-small", seed, kFusionMethods, k.fusion_sparsities,
               {"--structured", "--fold-bn", "--group-index", "1", "--score-batches", "5"}, 32, 4);
  }
  // All methods on one network at matched sparsity, with the measured speed-up.
  const uint64_t s0 = plan.seeds.front();
  for (std::string m : {"magnitude", "snip", "spode", "woodfisher", "lr", "swap"}) {
    std::vector<std::string> flags{"--method", m, "--sparsity", "0.9"};
    flags.insert(flags.end(), swap_flags.begin(), swap_flags.end());
    plan.prune(m, "mlpnet", s0, flags);
  }
  plan.prune("sfw-magnitude", "mlp-sfw", s0, {"--method", "magnitude", "--sparsity", "0.9"});
  plan.prune("l1-channels", "mlpnet", s0, {"--structured", "--importance", "l1", "--sparsity", "0.5"});
  plan.prune("intrafusion-channels", "mlpnet", s0,
             {"--structured", "--method", "intrafusion", "--importance", "l1", "--sparsity", "0.5"});
  return plan;
}

void run_plan(const Plan& plan) {
  fs::create_directories(plan.dir / "logs");
  double total_cost = 0, left_cost = 0, run_cost = 0, run_seconds = 0;
  for (const Step& s : plan.steps) total_cost += s.cost;
  left_cost = total_cost;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    char head[64];
    std::snprintf(head, sizeof head, "[%zu/%zu] ", i + 1, plan.steps.size());
    if (s.done()) {
      say(plan, fmt("%s%s: done before, skipped", head, s.title.c_str()));
      left_cost -= s.cost;
      continue;
    }
    std::string eta = run_cost > 0 ? ", about " + format_duration(run_seconds / run_cost * left_cost) + " left" : "";
    say(plan, fmt("%s%s (log: logs/%s%s)", head, s.title.c_str(), s.log.c_str(), eta.c_str()));
    auto step_start = std::chrono::steady_clock::now();
    std::vector<std::string> args = s.args;
    // An interrupted training resumes from its last training state; one killed before it saved
    // any starts again (its folder may hold a checkpoint written just before the kill).
    if (args.front() == "train") {
      fs::path out = args[std::find(args.begin(), args.end(), "--output") - args.begin() + 1];
      if (fs::exists(out / "last.optim.safetensors"))
        args.insert(args.end(), {"--resume", (out / "last.safetensors").string()});
      else
        args.push_back("--overwrite");
    }
    int status = run_child(plan.c.executable, args, plan.dir / "logs" / s.log);
    SHEARS_CHECK(status == 0, "report", "step '", s.title, "' failed (exit ", status, "); the end of ",
                 (plan.dir / "logs" / s.log).string(), ":\n", tail(plan.dir / "logs" / s.log, 8),
                 "rerun the same command to resume");
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    run_seconds += seconds;
    // Each finished step's wall time, so that a report resumed over several runs can total them.
    std::ofstream(plan.dir / "logs" / "step_seconds.csv", std::ios::app) << s.log << ',' << seconds << '\n';
    run_cost += s.cost;
    left_cost -= s.cost;
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    say(plan, fmt("    done in %s (total %s)", format_duration(seconds).c_str(), format_duration(total).c_str()));
  }
}

// ---- The report, from the CSVs

// Test top-1 of the last epoch of each seed's dense model, mean ± std.
Cell dense_accuracy(const Plan& plan, const std::string& model) {
  std::vector<SweepRow> rows;
  for (uint64_t seed : plan.seeds) {
    std::ifstream in(plan.model_dir(model, seed) / "summary.csv");
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    std::vector<std::string> cells;
    std::stringstream s(last);
    for (std::string cell; std::getline(s, cell, ',');) cells.push_back(cell);
    SHEARS_CHECK(cells.size() > 6, (plan.model_dir(model, seed) / "summary.csv").string(), "has no finished epoch");
    rows.push_back({"dense", 0, seed, std::stod(cells[6])});  // test_top1
  }
  return aggregate(rows)["dense"][0];
}

// Every seed's sweep of one claim, methods renamed by `rename` (to merge sweeps of two models).
std::vector<SweepRow> claim_rows(const Plan& plan, const std::string& claim, const std::string& rename = "") {
  std::vector<SweepRow> rows;
  for (uint64_t seed : plan.seeds)
    for (SweepRow r : read_sweep_rows(plan.dir / claim / ("seed" + std::to_string(seed)) / "sweep.csv")) {
      if (!rename.empty()) r.method = rename;
      rows.push_back(r);
    }
  return rows;
}

std::string cell_text(const Cell& c) {
  char text[48];
  if (c.n > 1)
    std::snprintf(text, sizeof text, "%.2f ± %.2f", c.mean, c.std);
  else
    std::snprintf(text, sizeof text, "%.2f", c.mean);
  return text;
}

double mean_at(const Table& t, const std::string& method, double sparsity) {
  auto m = t.find(method);
  SHEARS_CHECK(m != t.end(), "report", "no results for method '", method, "'");
  auto it = m->second.find(sparsity);
  SHEARS_CHECK(it != m->second.end(), "report", "no results for '", method, "' at sparsity ", sparsity);
  return it->second.mean;
}

std::string markdown_table(const Table& t, const std::vector<std::string>& methods, const std::string& first_column) {
  std::set<double> sparsities;
  for (const auto& [m, by] : t)
    for (const auto& [s, cell] : by) sparsities.insert(s);
  std::string out = "| " + first_column + " | " + join(methods, " | ") + " |\n|---|";
  for (size_t i = 0; i < methods.size(); ++i) out += "---:|";
  out += "\n";
  for (double s : sparsities) {
    char head[32];
    std::snprintf(head, sizeof head, "%g", s);
    out += std::string("| ") + head + " |";
    for (const std::string& m : methods) {
      auto it = t.find(m);
      bool has = it != t.end() && it->second.count(s);
      out += ' ';
      out += has ? cell_text(it->second.at(s)) : "–";
      out += " |";
    }
    out += "\n";
  }
  return out;
}

std::string plot_file(const Plan& plan, const std::string& name, const Table& t, const std::vector<std::string>& methods,
                      const Cell& dense, const std::string& title, const std::string& x_label) {
  LinePlot plot = accuracy_plot(t, methods, dense.mean);
  plot.title = title;
  plot.x_label = x_label;
  const bool png = write_plot(plot, plan.dir / (name + ".svg"));
  return "![" + title + "](" + name + (png ? ".png" : ".svg") + ")\n";
}

enum class Verdict { reproduced, mixed, not_reproduced };

std::string verdict_text(Verdict v) {
  switch (v) {
    case Verdict::reproduced: return "**claim reproduced**";
    case Verdict::mixed: return "**mixed**";
    case Verdict::not_reproduced: return "**claim not reproduced**";
  }
  return "";
}

Verdict verdict_of(bool both, bool one) { return both ? Verdict::reproduced : one ? Verdict::mixed : Verdict::not_reproduced; }

struct Section {
  std::string markdown;
  std::string name;
  Verdict verdict;
};

Section swap_section(const Plan& plan) {
  Table clean = aggregate(claim_rows(plan, "swap")), noisy = aggregate(claim_rows(plan, "swap-noise"));
  Cell dense = dense_accuracy(plan, "mlpnet");
  // The claim is about high sparsity (0.9–0.98): every such sparsity of the plan must agree.
  bool ordering = true, regression_wins = true;
  double growth = 0.0;
  std::string detail, gaps;
  int high = 0;
  for (double s : scale_of(plan.c.full).swap_sparsities) {
    if (s < 0.9) continue;
    ++high;
    double swap = mean_at(clean, "swap", s), lr = mean_at(clean, "lr", s), mp = mean_at(clean, "magnitude", s);
    double gap_clean = swap - lr, gap_noisy = mean_at(noisy, "swap", s) - mean_at(noisy, "lr", s);
    ordering = ordering && swap >= lr - 1.0;
    regression_wins = regression_wins && lr >= mp + 5.0;
    growth += gap_noisy - gap_clean;
    detail += fmt("%sat %g SWAP %.2f, LR %.2f, MP %.2f", detail.empty() ? "" : "; ", s, swap, lr, mp);
    gaps += fmt("%sat %g %.2f → %.2f pt", gaps.empty() ? "" : "; ", s, gap_clean, gap_noisy);
  }
  SHEARS_ASSERT(high > 0);  // both plans hold sparsities of at least 0.9
  growth /= high;
  Verdict first = verdict_of(ordering && regression_wins, ordering || regression_wins);
  Verdict second = growth >= 0.5 ? Verdict::reproduced : growth <= -0.5 ? Verdict::not_reproduced : Verdict::mixed;
  std::string md = "## SWAP — sparse entropic Wasserstein regression (You & Cheng, ICLR 2024)\n\n";
  md +=
      "**Claim** (docs/algorithms/swap.md#what-we-expect-on-fashion-mnist): at high sparsity, pruning by "
      "regression on per-sample gradients beats "
      "magnitude by far (LR ≫ MP) and the entropic Wasserstein version is at least as good (SWAP ≥ LR); with noisy "
      "gradients SWAP degrades less than LR, so the SWAP − LR gap grows with the noise.\n\n";
  md += fmt("Setting: MLPNet 784-40-20-10 (dense top-1 %s %%), one-shot global pruning of fc1–fc3 without fine-tuning, "
            "n = %lld per-sample gradients, `--inner-iters 0 --eps 1 --eps-relative`: LR is the ridge re-solve of the "
            "regression on magnitude's support, SWAP one entropic plan (ε = mean(M)) at LR's solution and a re-solve "
            "against the plan's smoothed targets; noise: c = 2 on half of each gradient's entries.\n\n",
            cell_text(dense).c_str(), (long long)scale_of(plan.c.full).swap_samples);
  md += "Top-1 (%) on the test split, no noise:\n\n" + markdown_table(clean, kSwapMethods, "sparsity") + "\n";
  md += "With gradient noise:\n\n" + markdown_table(noisy, kSwapMethods, "sparsity") + "\n";
  md += plot_file(plan, "swap", clean, kSwapMethods, dense, "SWAP vs LR vs WoodFisher vs magnitude (MLPNet)",
                  "sparsity (%)") + "\n";
  md += fmt("Verdict (ordering, rule: SWAP ≥ LR − 1 pt and LR ≥ MP + 5 pt at every sparsity ≥ 0.9; one of the two: "
            "mixed): %s — %s.\n\n", verdict_text(first).c_str(), detail.c_str());
  md += fmt("Verdict (noise, rule: the SWAP − LR gap grows with noise by ≥ 0.5 pt on average over the sparsities ≥ 0.9; "
            "shrinks by ≥ 0.5 pt: not reproduced): %s — gap without → with noise %s (mean change %+.2f pt).\n\n",
            verdict_text(second).c_str(), gaps.c_str(), growth);
  Verdict overall = first == second ? first : Verdict::mixed;
  return {md, "SWAP", overall};
}

Section fusion_section(const Plan& plan) {
  Table t = aggregate(claim_rows(plan, "intrafusion"));
  Cell dense = dense_accuracy(plan, "vgg11_bn-small");
  const auto& sparsities = scale_of(plan.c.full).fusion_sparsities;
  int wins = 0, cases = 0;
  bool grows = true;
  std::string detail;
  for (const char* imp : {"l1", "taylor"}) {
    std::string fused = std::string("intrafusion:") + imp;
    for (double s : sparsities) {
      ++cases;
      wins += mean_at(t, fused, s) >= mean_at(t, imp, s);
    }
    double first_gap = mean_at(t, fused, sparsities.front()) - mean_at(t, imp, sparsities.front());
    double last_gap = mean_at(t, fused, sparsities.back()) - mean_at(t, imp, sparsities.back());
    grows = grows && last_gap > first_gap;
    detail += fmt("%s%s: gap %.2f pt at %g, %.2f pt at %g", detail.empty() ? "" : "; ", imp, first_gap,
                  sparsities.front(), last_gap, sparsities.back());
  }
  std::string md = "## Intra-Fusion — optimal-transport fusion of pruned channels (Theus et al., ICLR 2024)\n\n";
  md +=
      "**Claim** (docs/algorithms/intra-fusion.md#what-we-expect-on-fashion-mnist): with the same importance, "
      "fusing every channel of a group into the kept ones "
      "with an exact OT plan recovers more accuracy than deleting the pruned channels, without any data or "
      "fine-tuning, by more as the sparsity grows.\n\n";
  const Scale k = scale_of(plan.c.full);
  const std::string trained_on = k.vgg_train_images > 0 && plan.c.limit_train == 0
                                     ? fmt(" on the first %lld training images", (long long)k.vgg_train_images)
                                     : "";
  md += fmt("Setting: VGG-11-BN with widths 16-32-64-64-64-64-64-64 at 32×32, %lld epoch(s)%s (dense top-1 %s %%), "
            "BatchNorms folded, the second group from the output (the reference's one-group protocol), channel "
            "sparsity on the x-axis; plain pruning (l1, taylor) against Intra-Fusion with the same importance.\n\n",
            (long long)k.vgg_epochs, trained_on.c_str(), cell_text(dense).c_str());
  md += "Top-1 (%):\n\n" + markdown_table(t, kFusionMethods, "channel sparsity") + "\n";
  md += plot_file(plan, "intrafusion", t, kFusionMethods, dense, "Intra-Fusion vs plain channel pruning (VGG-11-BN)",
                  "channels removed from the group (%)") + "\n";
  Verdict v = verdict_of(wins == cases && grows, wins * 2 > cases);
  md += fmt("Verdict (rule: Intra-Fusion ≥ plain pruning in every case and the gap larger at the highest than at the "
            "lowest sparsity for both importances): %s — Intra-Fusion ahead in %d of %d cases; %s.\n\n",
            verdict_text(v).c_str(), wins, cases, detail.c_str());
  return {md, "Intra-Fusion", v};
}

// Implicit regrowth (a claim of the paper) from the trace of the matched-sparsity SpODE run: the
// entries whose mask rose back after falling, summed over the steps.
std::string regrowth_summary(const fs::path& trace) {
  std::ifstream in(trace);
  std::string line;
  if (!std::getline(in, line)) return "";  // the comparison step has not run
  int64_t steps = 0, regrown = 0, increased = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    SHEARS_CHECK(cells.size() >= 7 && !cells[5].empty() && !cells[6].empty() &&
                     cells[5].find_first_not_of("0123456789") == std::string::npos &&
                     cells[6].find_first_not_of("0123456789") == std::string::npos,
                 trace.string(), "row ", steps + 1, " is not a trace row (step,dt,loss,soft_sparsity,"
                 "polarised_sparsity,increased,regrown): '", line, "'");
    ++steps;
    increased += std::stoll(cells[5]);
    regrown += std::stoll(cells[6]);
  }
  return fmt("Regrowth (`compare/spode/spode_trace.csv`, the 90 %% run below): over %lld steps, %lld mask entries rose "
             "and %lld pruned entries grew back.\n\n",
             (long long)steps, (long long)increased, (long long)regrown);
}

Section spode_section(const Plan& plan) {
  Table t = aggregate(claim_rows(plan, "spode"));
  Cell dense = dense_accuracy(plan, "mlpnet");
  // The claim is about density ≤ 2 %: every such sparsity of the plan must agree.
  bool ahead_of_all = true, ahead_of_magnitude = true;
  std::string detail;
  for (double s : scale_of(plan.c.full).spode_sparsities) {
    if (s < 0.98) continue;
    double spode = mean_at(t, "spode", s), best_other = 0;
    detail += fmt("%sat %g SpODE %.2f", detail.empty() ? "" : "; ", s, spode);
    for (const char* m : {"magnitude", "snip", "synflow", "grasp"}) {
      best_other = std::max(best_other, mean_at(t, m, s));
      detail += fmt(", %s %.2f", m, mean_at(t, m, s));
    }
    ahead_of_all = ahead_of_all && spode >= best_other - 1.0;
    ahead_of_magnitude = ahead_of_magnitude && spode >= mean_at(t, "magnitude", s) - 1.0;
  }
  SHEARS_ASSERT(!detail.empty());  // both plans hold sparsities of at least 0.98
  std::string md = "## SpODE — pruning along the sparsity-indexed ODE of optimal masks (Mo, Shi & Pan, ICML 2023)\n\n";
  md +=
      "**Claim** (docs/algorithms/spode.md#what-we-expect-on-fashion-mnist): at very low density, following the "
      "path of optimal masks keeps more "
      "accuracy than one-shot scores: PSO ≥ magnitude ≥ the others at density ≤ 2 %.\n\n";
  md += fmt("Setting: MLPNet (dense top-1 %s %%), global unstructured pruning without fine-tuning, %lld ODE steps; "
            "SpODE writes its regrowth trace to spode_trace.csv in `shears prune` runs.\n\n",
            cell_text(dense).c_str(), (long long)scale_of(plan.c.full).spode_steps);
  md += "Top-1 (%):\n\n" + markdown_table(t, kSpodeMethods, "sparsity") + "\n";
  md += plot_file(plan, "spode", t, kSpodeMethods, dense, "SpODE vs one-shot baselines (MLPNet)", "sparsity (%)") + "\n";
  md += regrowth_summary(plan.dir / "compare" / "spode" / "spode_trace.csv");
  Verdict v = verdict_of(ahead_of_all, ahead_of_magnitude);
  md += fmt("Verdict (rule at every sparsity ≥ 0.98: SpODE ≥ the best baseline − 1 pt; only ≥ magnitude − 1 pt: "
            "mixed): %s — %s.\n\n", verdict_text(v).c_str(), detail.c_str());
  return {md, "SpODE", v};
}

Section sfw_section(const Plan& plan) {
  std::vector<SweepRow> rows = claim_rows(plan, "sfw", "SFW + magnitude");
  for (const SweepRow& r : claim_rows(plan, "sfw-sgd", "SGD + magnitude")) rows.push_back(r);
  Table t = aggregate(rows);
  Cell dense_sfw = dense_accuracy(plan, "mlp-sfw"), dense_sgd = dense_accuracy(plan, "mlp-sgd");
  const std::vector<std::string> methods{"SGD + magnitude", "SFW + magnitude"};
  const double s = 0.9;
  double sfw = mean_at(t, methods[1], s), sgd = mean_at(t, methods[0], s);
  bool flat = sfw >= dense_sfw.mean - 5.0, beats = sfw > sgd;
  std::string md = "## SFW — training with stochastic Frank-Wolfe for pruning-friendly networks (Lu et al., ICLR "
                   "2022)\n\n";
  md +=
      "**Claim** (docs/algorithms/sfw.md#what-we-expect-on-fashion-mnist): a network trained once with SFW over "
      "K-sparse polytopes can be magnitude-"
      "pruned to high sparsity with little loss and no retraining: its accuracy curve stays flat to ≥ 90 % sparsity, "
      "where SGD + magnitude pruning collapses.\n\n";
  md += fmt("Setting: MLP 784-128-128-10; SGD (dense top-1 %s %%) and SFW with lr 1, momentum 0.9, decrease_3 (dense "
            "top-1 %s %%), the same epochs; global magnitude pruning without fine-tuning.\n\n",
            cell_text(dense_sgd).c_str(), cell_text(dense_sfw).c_str());
  md += "Top-1 (%):\n\n" + markdown_table(t, methods, "sparsity") + "\n";
  md += plot_file(plan, "sfw", t, methods, dense_sfw, "SFW vs SGD, magnitude-pruned without retraining (MLP)",
                  "sparsity (%)") + "\n";
  Verdict v = verdict_of(flat && beats, beats);
  md += fmt("Verdict (rule at sparsity 0.9: SFW + magnitude > SGD + magnitude and within 5 pt of SFW's dense "
            "accuracy; only the first: mixed): %s — SFW %.2f (dense %.2f), SGD %.2f.\n\n",
            verdict_text(v).c_str(), sfw, dense_sfw.mean, sgd);
  return {md, "SFW", v};
}

std::string comparison_section(const Plan& plan) {
  std::string md = "## All methods on one network\n\n";
  md +=
      fmt("MLPNet (seed %llu): unstructured methods at 90 %% sparsity (masked layers run on the sparse kernels "
          "where the density table of docs/sparse.md says they are faster), SFW's MLP at 90 %%, and channel pruning at "
          "a channel ratio of 0.5 (a smaller dense network). Measured speed-up: median latency of a test batch, dense "
          "over pruned.\n\n",
          (unsigned long long)plan.seeds.front());
  md += "| method | top-1 (%) | sparsity of the weights | nonzero params | nonzero FLOPs | measured speed-up |\n"
        "|---|---:|---:|---:|---:|---:|\n";
  for (const char* name : {"magnitude", "snip", "spode", "woodfisher", "lr", "swap", "sfw-magnitude", "l1-channels",
                           "intrafusion-channels"}) {
    nlohmann::json m = nlohmann::json::parse(std::ifstream(plan.dir / "compare" / name / "metrics.json"));
    md += fmt("| %s | %.2f | %.3f | %lld | %lld | %.2fx |\n", name, m["acc1"].get<double>(), m["sparsity"].get<double>(),
              m["size_nz"].get<long long>(), m["flops_nz"].get<long long>(), m["measured_speedup"].get<double>());
  }
  return md + "\n";
}

void write_report(const Plan& plan, double seconds) {
  std::vector<Section> sections{swap_section(plan), fusion_section(plan), spode_section(plan), sfw_section(plan)};
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  std::string md = "# shears report: four pruning papers on " + plan.c.data + "\n\n";
  md += fmt("shears %s, %s plan, %zu seed(s) (each seed trains its own dense models), written %s. Every number below "
            "is read from the CSVs in this folder (`*/seed*/sweep.csv`, `models/*/summary.csv`, "
            "`compare/*/metrics.json`); every verdict is computed from them by the rule printed beside it. Rerun "
            "`shears report` with the same flags to add what is missing; delete a file to recompute it.\n\n",
            kVersion, plan.c.full ? "full" : "quick", plan.seeds.size(), date);
  md += "Written on " + machine_line(this_machine()) +
        "; every step records the machine it ran on (`machine.jsonl` in the model and sweep folders, `machine` in "
        "each `metrics.json`), and `machine.jsonl` here lists the runs of this report.\n\n";
  if (plan.c.limit_train > 0 || plan.c.limit_test > 0)
    md += fmt("Data limited to the first %lld training and %lld test images: a smoke run, not evidence.\n\n",
              (long long)plan.c.limit_train, (long long)plan.c.limit_test);
  md += "| paper | verdict |\n|---|---|\n";
  for (const Section& s : sections) md += "| " + s.name + " | " + verdict_text(s.verdict) + " |\n";
  md += "\n";
  for (const Section& s : sections) md += s.markdown;
  md += comparison_section(plan);
  double total = 0.0;  // over every run that finished a step (logs/step_seconds.csv)
  std::ifstream steps(plan.dir / "logs" / "step_seconds.csv");
  for (std::string line; std::getline(steps, line);)
    if (size_t comma = line.rfind(','); comma != std::string::npos) total += std::atof(line.c_str() + comma + 1);
  md += fmt("The plan's finished steps took %s of wall time in all (`logs/step_seconds.csv`); this run, %s.\n",
            format_duration(total).c_str(), format_duration(seconds).c_str());
  fs::path file = plan.dir / "report.md", temp = plan.dir / "report.md.tmp";
  std::ofstream(temp) << md;
  fs::rename(temp, file);
  say(plan, "");
  for (const Section& s : sections) say(plan, fmt("%-13s %s", s.name.c_str(), verdict_text(s.verdict).c_str()));
  say(plan, "wrote " + file.string());
}

}  // namespace

void run_report(ReportOptions c) {
  SHEARS_CHECK(c.seeds >= 0, "--seeds", "must be positive, got ", c.seeds);
  if (c.seeds == 0) c.seeds = c.full ? 3 : 1;
  Plan plan = make_plan(c);
  fs::create_directories(plan.dir);
  append_machine_record(plan.dir / "machine.jsonl");
  say(plan, fmt("report on %s: %s plan, %lld seed(s), %zu steps, in %s", c.data.c_str(), c.full ? "full" : "quick",
                (long long)c.seeds, plan.steps.size(), plan.dir.c_str()));
  auto start = std::chrono::steady_clock::now();
  run_plan(plan);
  write_report(plan, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

std::string format_duration(double seconds) {
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

}  // namespace shears::pipeline
