// SWAP, LR, WoodFisher and gradual magnitude pruning as registry rows: the stage driver of
// prune/algorithms/swap.hpp (one-shot with one stage), fine-tuning between stages through the context, a log
// line and a trace row per stage.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "prune/methods/builtin.hpp"

namespace shears::prune::builtin {

namespace {

double epsilon_ratio(const SwapStageLog& l) { return l.mean_cost > 0 ? l.epsilon / l.mean_cost : 0.0; }

// Plans that stopped at the kernel's precision, above the tolerance.
std::string stall_note(const SwapStageLog& l) {
  if (l.stagnated_plans == 0) return "";
  char note[96];
  std::snprintf(note, sizeof note, ", %lld stalled, last error %.2g", (long long)l.stagnated_plans, l.marginal_error);
  return note;
}

void log_stages(const PruneContext& context, const std::vector<SwapStageLog>& logs, int64_t stages) {
  if (!context.log) return;
  for (const SwapStageLog& l : logs) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "stage %lld/%lld %s: sparsity %.4f, plan %s (eps/mean(M) %.3g, %lld Sinkhorn its%s), Q %.4g -> %.4g, "
                  "%lld inner its, overlap with magnitude %.3f, G %.2f s, solve %.2f s",
                  (long long)l.stage, (long long)stages, l.method.c_str(), l.sparsity,
                  l.plan.empty() ? "-" : l.plan.c_str(), epsilon_ratio(l), (long long)l.sinkhorn_iterations,
                  stall_note(l).c_str(), l.objective_before, l.objective_after, (long long)l.inner_iterations,
                  l.magnitude_overlap, l.gradient_seconds, l.solve_seconds);
    context.log(line);
  }
}

// ε's scale and the plan's state decide what EWR does: the trace keeps them.
void write_trace(const std::filesystem::path& path, const std::vector<SwapStageLog>& logs) {
  std::ofstream trace(path);
  trace << "stage,method,sparsity,kept,plan,epsilon,mean_cost,eps_over_mean_cost,plan_entropy,sinkhorn_iterations,"
           "marginal_error,converged,objective_before,objective_after,tau_c,tau,fallback,inner_iterations,"
           "magnitude_overlap,regrown,gradient_seconds,solve_seconds,stagnated_plans\n";
  trace.precision(10);
  for (const SwapStageLog& l : logs)
    trace << l.stage << ',' << l.method << ',' << l.sparsity << ',' << l.kept << ',' << l.plan << ',' << l.epsilon
          << ',' << l.mean_cost << ',' << epsilon_ratio(l) << ',' << l.plan_entropy << ',' << l.sinkhorn_iterations
          << ',' << l.marginal_error << ',' << l.converged << ',' << l.objective_before << ',' << l.objective_after
          << ',' << l.tau_c << ',' << l.tau << ',' << l.fallback << ',' << l.inner_iterations << ','
          << l.magnitude_overlap << ',' << l.regrown << ',' << l.gradient_seconds << ',' << l.solve_seconds << ','
          << l.stagnated_plans << '\n';
  SHEARS_CHECK(trace.good(), path.string(), "cannot write the stage trace");
}

}  // namespace

void staged(nn::Module& model, const PruneContext& context, StageMethod method) {
  const std::vector<std::string> names = checked_names(model, context);
  SwapPruneOptions options = context.options.swap;
  options.method = method;
  options.seed = context.seed;
  // One batch of n fresh training samples per stage (workers 0: no batch is prepared ahead).
  BatchSource samples = open_batches(context, {context.options.swap_samples, context.seed, true, 0, "swap_prune"});
  auto between = [&](int64_t stage) {
    if (context.between_stages) context.between_stages(model, stage, context.seed + static_cast<uint64_t>(stage));
  };
  const std::vector<SwapStageLog> logs = swap_prune(model, names, context.target, samples, options, between);
  log_stages(context, logs, options.stages);
  if (context.trace_folder.empty()) return;
  std::filesystem::create_directories(context.trace_folder);
  write_trace(std::filesystem::path(context.trace_folder) / "swap_trace.csv", logs);
}

}  // namespace shears::prune::builtin
